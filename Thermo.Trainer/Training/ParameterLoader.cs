using Thermo.Analysis;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Training;

/// <summary>Copies a snapshot's values into a model's parameters and buffers, by layer and tensor name.</summary>
public static class ParameterLoader
{
    /// <summary>(layer, tensor) of a TorchSharp parameter or buffer name such as <c>conv1.weight</c>.</summary>
    public static (string Layer, string Tensor) SplitName(string name)
    {
        int dot = name.LastIndexOf('.');
        return dot < 0 ? (name, name) : (name[..dot], name[(dot + 1)..]);
    }

    /// <summary>
    /// Loads every parameter and buffer of <paramref name="model"/> from <paramref name="snapshot"/>;
    /// throws <see cref="ThermoException"/> naming <paramref name="source"/> when one is missing or has
    /// another shape (a snapshot written with --snapshot-layers, or of another model).
    /// </summary>
    public static void Load(nn.Module<Tensor, Tensor> model, Snapshot snapshot, string source)
    {
        var byName = snapshot.Tensors.ToDictionary(t => (t.Layer, t.Tensor));
        using var noGrad = no_grad();
        void Copy(string name, Tensor target)
        {
            var key = SplitName(name);
            if (!byName.TryGetValue(key, out var t))
                throw new ThermoException($"{source}: holds no {name}; re-evaluating a model needs every parameter and buffer (were only some of the run's layers snapshotted?)");
            var shape = target.shape.Select(d => (int)d).ToArray();
            if (!shape.SequenceEqual(t.Shape))
                throw new ThermoException($"{source}: {name} has shape [{string.Join("×", t.Shape)}], the model's is [{string.Join("×", shape)}]");
            using var values = tensor(t.Values, target.shape).to(target.dtype).to(target.device);
            target.copy_(values);
        }
        foreach (var (name, p) in model.named_parameters()) Copy(name, p);
        foreach (var (name, b) in model.named_buffers()) Copy(name, b);
    }
}
