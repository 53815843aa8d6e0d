using Thermo.Analysis;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Training;

/// <summary>
/// The partial local entropy losses of the partial-entropy paper (docs/THEORY.md, "Partial local entropy
/// losses"): the cross-entropy at the weights W and at y copies W + ΔW^a whose chosen layers' weights
/// (not biases) are displaced uniformly in the hyper-cube of half-side R.
/// PLA: L = (1/(1+y)) [L(W) + Σ_a L(W + ΔW^a)]; its gradient is the mean of the gradients taken at each
/// point, so the sampling does not act as a larger learning rate.
/// PLEA: L = −log((1/(1+y)) Σ_a e^{−L(W+ΔW^a)}); its gradient is Σ_a p_a ∇L(W+ΔW^a) with
/// p = softmax(−L), again weights summing to one.
/// The copies share W: each point is visited by displacing the weights in place, and restored by
/// copying the saved values back (so W is bit-for-bit unchanged, not W + Δ − Δ).
/// </summary>
public static class SmoothedLoss
{
    /// <summary>Uniform displacements in [−R, R] for each smoothed weight tensor, one set per sample, from torch's seeded generator.</summary>
    public static Tensor[][] Displacements(IReadOnlyList<Tensor> smoothed, double radius, int samples) =>
        Enumerable.Range(0, samples).Select(_ => smoothed.Select(w => (rand_like(w) * 2 - 1) * radius).ToArray()).ToArray();

    /// <summary>
    /// Accumulates the loss's gradient into the parameters' .grad (zero them first) and returns the
    /// loss value and the logits at W (for accuracy). <paramref name="displacements"/>[a][i] displaces
    /// <paramref name="smoothed"/>[i] at sample a.
    /// </summary>
    public static (double Loss, Tensor Logits) Backward(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, string kind,
        IReadOnlyList<Tensor> smoothed, Tensor[][] displacements)
    {
        int points = displacements.Length + 1;
        var saved = smoothed.Select(w => w.detach().clone()).ToArray();
        try
        {
            void MoveTo(int point)
            {
                using var noGrad = no_grad();
                for (int i = 0; i < smoothed.Count; i++)
                {
                    smoothed[i].copy_(saved[i]);
                    if (point > 0) smoothed[i].add_(displacements[point - 1][i]);
                }
            }
            double[] weights;
            Tensor? centreLogits = null;
            double value;
            if (kind == "pla")
            {
                weights = Enumerable.Repeat(1.0 / points, points).ToArray();
                value = 0;
                for (int a = 0; a < points; a++)
                {
                    MoveTo(a);
                    var logits = model.forward(x);
                    var loss = nn.functional.cross_entropy(logits, y);
                    (loss * weights[a]).backward();
                    value += weights[a] * loss.item<float>();
                    if (a == 0) centreLogits = logits.detach(); else logits.Dispose();
                }
            }
            else if (kind == "plea")
            {
                // The weights p_a = softmax(−L_a) need every L_a first: one pass without gradients.
                var losses = new double[points];
                using (no_grad())
                    for (int a = 0; a < points; a++)
                    {
                        MoveTo(a);
                        using var logits = model.forward(x);
                        losses[a] = nn.functional.cross_entropy(logits, y).item<float>();
                    }
                double min = losses.Min();
                var e = losses.Select(l => Math.Exp(-(l - min))).ToArray();
                weights = e.Select(v => v / e.Sum()).ToArray();
                value = min - Math.Log(e.Sum() / points);
                for (int a = 0; a < points; a++)
                {
                    MoveTo(a);
                    var logits = model.forward(x);
                    (nn.functional.cross_entropy(logits, y) * weights[a]).backward();
                    if (a == 0) centreLogits = logits.detach(); else logits.Dispose();
                }
            }
            else throw new SettingException(nameof(TrainConfig.Loss), "", $"unknown loss '{kind}' (known: ce, pla, plea)");
            return (value, centreLogits!);
        }
        finally
        {
            using (no_grad())
                for (int i = 0; i < smoothed.Count; i++) smoothed[i].copy_(saved[i]);
            foreach (var s in saved) s.Dispose();
        }
    }
}
