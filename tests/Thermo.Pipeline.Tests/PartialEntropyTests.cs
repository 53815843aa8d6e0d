using Thermo.Analysis;
using Thermo.Pipeline.Protocols;
using static Thermo.Pipeline.Protocols.PartialEntropyReproduction;

namespace Thermo.Pipeline.Tests;

/// <summary>The partial-entropy grid's pure parts: a run's outcome from its tables, and the pairing against plain cross-entropy.</summary>
public class PartialEntropyTests
{
    static MetricsRow Epoch(int epoch, double testAccuracy) => new(epoch, epoch * 10, 1.0 / (epoch + 1), 0.5, 0.3, testAccuracy, 1e-3, 256, 2.0, 0.1, 0, 1000);

    static GradientNoiseRow Noise(int epoch, string layer, double mean) => new(epoch, layer, mean, mean / 2, 10);

    [Fact]
    public void A_runs_outcome_is_its_first_best_epoch_its_last_epoch_and_its_signal_peaks()
    {
        // Epoch 0 (the initialisation) has the highest accuracy of all but is not a trained epoch.
        MetricsRow[] metrics = [Epoch(0, 0.95), Epoch(1, 0.5), Epoch(2, 0.7), Epoch(3, 0.7), Epoch(4, 0.6)];
        GradientNoiseRow[] noise = [Noise(1, "fc1", 1), Noise(2, "fc1", 4), Noise(3, "fc1", 2), Noise(1, "fc2", 3), Noise(2, "fc2", 1)];
        var outcome = Measure(new Point("pla", ["fc2"], 0.03), 1, metrics, noise);
        Assert.Equal(0.7, outcome.BestTestAccuracy);
        Assert.Equal(2, outcome.BestEpoch);
        Assert.Equal(0.6, outcome.FinalTestAccuracy);
        Assert.Equal(4 * 2.0, outcome.TrainSeconds);
        Assert.Equal([("fc1", 2), ("fc2", 1)], outcome.SignalPeaks.Select(p => (p.Layer, p.Epoch)));
        Assert.Equal("pla-fc2-R=0.03", outcome.Point.Name);
        Assert.Equal("plea-fc1+fc2-R=0.1", new Point("plea", ["fc1", "fc2"], 0.1).Name);
    }

    [Fact]
    public void Each_point_is_paired_with_plain_cross_entropy_seed_by_seed()
    {
        var ce = new Point("ce", [], 0);
        var pla = new Point("pla", ["fc2"], 0.03);
        Outcome Run(Point p, int seed, double best, double final) => new(p, seed, best, 1, final, 0, 0, 0, []);
        // Seed 3 of pla has no plain partner and stays out of the pairing (not of the mean).
        var summaries = Summarise([Run(ce, 1, 0.80, 0.79), Run(ce, 2, 0.82, 0.80), Run(pla, 2, 0.85, 0.80), Run(pla, 1, 0.81, 0.78), Run(pla, 3, 0.90, 0.90)]);
        var plain = summaries.Single(s => s.Point.IsPlain);
        Assert.Null(plain.BestAgainstPlain);
        Assert.Equal(0.81, plain.BestMean, 12);
        var smoothed = summaries.Single(s => !s.Point.IsPlain);
        Assert.Equal(3, smoothed.Runs);
        Assert.Equal((0.81 + 0.85 + 0.90) / 3, smoothed.BestMean, 12);
        var paired = smoothed.BestAgainstPlain!;
        Assert.Equal(2, paired.Runs);
        // Differences in points: seed 1: 81 − 80 = 1, seed 2: 85 − 82 = 3; mean 2, sd √2, t = 2 on 1 df.
        Assert.Equal([1.0, 3.0], paired.Differences.Select(d => Math.Round(d, 9)));
        Assert.Equal(2.0, paired.MeanDifference, 9);
        Assert.Equal(Math.Sqrt(2), paired.StandardDeviation, 9);
        // Student's t on 1 df is Cauchy: two-sided p = 1 − 2·atan(t)/π.
        Assert.Equal(1 - 2 * Math.Atan(2.0) / Math.PI, paired.TPValue, 9);
        // Between choices: pla over fc2 against pla over fc1+fc2 at the same radius, seeds 1 and 2 only.
        var both = new Point("pla", ["fc1", "fc2"], 0.03);
        var between = BetweenSmoothings([Run(ce, 1, 0.80, 0.79), Run(pla, 1, 0.81, 0.78), Run(pla, 2, 0.85, 0.80), Run(pla, 3, 0.90, 0.90),
            Run(both, 1, 0.80, 0.7), Run(both, 2, 0.80, 0.7), Run(new Point("pla", ["fc1"], 0.1), 1, 0.5, 0.5)]);
        var row = Assert.Single(between);
        Assert.Equal(("pla", 0.03, "fc2", "fc1+fc2", 2), (row.Loss, row.Radius, row.A, row.B, row.Comparison.Runs));
        Assert.Equal([1.0, 5.0], row.Comparison.Differences.Select(d => Math.Round(d, 9)));
        // Final: seed 1: 78 − 79 = −1, seed 2: 80 − 80 = 0.
        Assert.Equal(-0.5, smoothed.FinalAgainstPlain!.MeanDifference, 9);
    }
}
