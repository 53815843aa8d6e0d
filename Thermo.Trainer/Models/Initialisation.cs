using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Models;

/// <summary>
/// Re-initialises a fresh model's conv and linear kernels (parameters named weight with two or more
/// dimensions): He normal with fan-in for ReLU (kaiming, the partial-entropy paper's choice) or Glorot
/// uniform (xavier); those layers' biases start at zero. Batch-norm scales and other one-dimensional
/// weights keep their own initialisation. Draws from torch's seeded generator, so a seed still fixes it.
/// </summary>
public static class Initialisation
{
    public static void Apply(nn.Module model, string kind)
    {
        if (kind == "default") return;
        using var noGrad = no_grad();
        var kernels = model.named_parameters().Where(p => p.name.EndsWith("weight", StringComparison.Ordinal) && p.parameter.dim() >= 2).ToList();
        var kernelLayers = kernels.Select(p => p.name[..^"weight".Length]).ToHashSet();
        foreach (var (_, weight) in kernels)
        {
            if (kind == "kaiming") nn.init.kaiming_normal_(weight, mode: nn.init.FanInOut.FanIn, nonlinearity: nn.init.NonlinearityType.ReLU);
            else if (kind == "xavier") nn.init.xavier_uniform_(weight);
            else throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown initialisation");
        }
        foreach (var (name, bias) in model.named_parameters().Where(p => p.name.EndsWith("bias", StringComparison.Ordinal)))
            if (kernelLayers.Contains(name[..^"bias".Length])) bias.zero_();
    }
}
