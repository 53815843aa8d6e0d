using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Evaluation;

/// <summary>
/// The test-set evaluation shared by the trainer (each epoch's metrics) and the pruning stage (masked
/// models), so an unmasked re-evaluation of a run's final snapshot reproduces the trainer's own final
/// test metrics bit for bit: same batches, same order of summation.
/// </summary>
public static class TestEvaluation
{
    /// <summary>Images per evaluation batch.</summary>
    public const int BatchSize = 250;

    /// <summary>Mean cross-entropy and accuracy of <paramref name="model"/> (put in eval mode) on (x, y).</summary>
    public static (double Loss, double Accuracy) TestMetrics(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        model.eval();
        using var noGrad = no_grad();
        int n = (int)x.shape[0];
        double lossSum = 0;
        long correct = 0;
        for (int start = 0; start < n; start += BatchSize)
        {
            using var scope = NewDisposeScope();
            int count = Math.Min(BatchSize, n - start);
            var logits = model.forward(x.narrow(0, start, count));
            var labels = y.narrow(0, start, count);
            lossSum += nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).item<float>();
            correct += logits.argmax(1).eq(labels).sum().item<long>();
        }
        return (lossSum / n, (double)correct / n);
    }

    /// <summary>Logits of every image of <paramref name="x"/>, in eval mode (for comparing two models).</summary>
    public static Tensor Logits(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        model.eval();
        using var noGrad = no_grad();
        var parts = new List<Tensor>();
        for (int start = 0; start < x.shape[0]; start += BatchSize)
            parts.Add(model.forward(x.narrow(0, start, Math.Min(BatchSize, (int)x.shape[0] - start))));
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }
}
