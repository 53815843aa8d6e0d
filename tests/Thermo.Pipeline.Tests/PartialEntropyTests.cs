using Thermo.Analysis;
using Thermo.Analysis.Run;
using Thermo.Pipeline.Protocols;
using Thermo.Trainer.Training;
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
    public void A_run_without_a_trained_epoch_or_without_a_smoothed_layers_weights_is_named_by_its_file()
    {
        var run = Directory.CreateTempSubdirectory("thermo-pipeline-tests-").FullName;
        try
        {
            var point = new Point("pla", ["fc2"], 0.03);
            // A pure caller's tables are an argument, not a file.
            Assert.Throws<ArgumentException>(() => Measure(point, 1, [Epoch(0, 0.1)], []));
            Assert.Throws<ArgumentException>(() => Dose(point, new Dictionary<string, long> { ["fc1"] = 100 }));

            MetricsTable.Write(RunLayout.Metrics(run), [Epoch(0, 0.1)]);
            var untrained = Assert.Throws<ArtifactException>(() => ReadMetrics(run));
            Assert.Equal(RunLayout.Metrics(run), untrained.Path);
            Assert.Equal($"{RunLayout.Metrics(run)}: no trained epoch", untrained.Message);
            MetricsTable.Write(RunLayout.Metrics(run), [Epoch(0, 0.1), Epoch(1, 0.5)]);
            Assert.Equal(2, ReadMetrics(run).Count);

            Assert.Equal(run, Assert.Throws<ArtifactException>(() => WeightsPerLayer(run, [point])).Path);
            new RunManifest
            {
                RunId = "r", Config = new TrainConfig { Model = "mlp2" }, Dataset = new DatasetInfo("mnist", "", "", 1, 1, 1, 28, 28, 10),
                Layers = new() { ["fc1"] = "weight [10×784]; bias [10]", ["out"] = "weight [10×10]; bias [10]" }, Packages = [],
            }.Save(run);
            var missing = Assert.Throws<ArtifactException>(() => WeightsPerLayer(run, [new Point("ce", [], 0), point]));
            Assert.Equal(RunLayout.Manifest(run), missing.Path);
            Assert.EndsWith("lists no weight of layer 'fc2'", missing.Message);
            Assert.Equal(7840, WeightsPerLayer(run, [new Point("pla", ["fc1"], 0.1)])["fc1"]);
        }
        finally { Directory.Delete(run, true); }
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
        // Between choices: pla over fc2 against pla over fc1+fc2 at the same radius, seeds 1 and 2 only, on final accuracy.
        var both = new Point("pla", ["fc1", "fc2"], 0.03);
        var between = BetweenSmoothings([Run(ce, 1, 0.80, 0.79), Run(pla, 1, 0.81, 0.78), Run(pla, 2, 0.85, 0.80), Run(pla, 3, 0.90, 0.90),
            Run(both, 1, 0.80, 0.7), Run(both, 2, 0.80, 0.7), Run(new Point("pla", ["fc1"], 0.1), 1, 0.5, 0.5)], Weights);
        var row = Assert.Single(between);
        Assert.Equal(("pla", "fc2", "fc1+fc2", 2), (row.Loss, row.A.LayersText, row.B.LayersText, row.Comparison.Runs));
        Assert.Equal([8.0, 10.0], row.Comparison.Differences.Select(d => Math.Round(d, 9)));
        Assert.Equal(row.Comparison.TPValue, row.HolmTPValue, 12);   // a family of one
        Assert.Equal((0.03 * 0.03 / 3 * 100, 0.03 * 0.03 / 3 * 200), (row.DoseA, row.DoseB));
        // Final: seed 1: 78 − 79 = −1, seed 2: 80 − 80 = 0.
        Assert.Equal(-0.5, smoothed.FinalAgainstPlain!.MeanDifference, 9);
    }

    static readonly Dictionary<string, long> Weights = new() { ["fc1"] = 100, ["fc2"] = 100, ["out"] = 10 };

    /// <summary>
    /// Hand-worked: fc1 and fc2 of 100 weights each; fc1 and fc2 at R = 0.1 and fc1+fc2 at R/√2 all have
    /// the dose 0.1²/3·100; fc1 at 0.03 and a PLEA point match none of them.
    /// Final accuracies (%) over seeds 1–3: fc1 80, 82, 84; fc2 81, 82, 86; fc1+fc2 78, 79, 82.
    /// </summary>
    [Fact]
    public void Choices_of_equal_dose_are_paired_on_final_accuracy_and_Holm_adjusted_together()
    {
        var fc1 = new Point("pla", ["fc1"], 0.1);
        var fc2 = new Point("pla", ["fc2"], 0.1);
        var both = new Point("pla", ["fc1", "fc2"], 0.1 / Math.Sqrt(2));
        Outcome Run(Point p, int seed, double final) => new(p, seed, 0.99, 1, final / 100, 0, 0, 0, []);
        double[][] finals = [[80, 82, 84], [81, 82, 86], [78, 79, 82]];
        var outcomes = new[] { fc1, fc2, both }.SelectMany((p, i) => finals[i].Select((f, s) => Run(p, s + 1, f)))
            .Concat([Run(new Point("pla", ["fc1"], 0.03), 1, 70), Run(new Point("plea", ["fc2"], 0.1), 1, 70), Run(new Point("ce", [], 0), 1, 90)]).ToList();
        Assert.Equal(Dose(fc1, Weights), Dose(both, Weights), 12);
        Assert.Equal(0.01 / 3 * 100, Dose(fc2, Weights), 12);

        var rows = AtEqualDose(outcomes, Weights);
        Assert.Equal(["pla-fc1-R=0.1 − pla-fc2-R=0.1", "pla-fc1-R=0.1 − pla-fc1+fc2-R=0.07071067811865475", "pla-fc2-R=0.1 − pla-fc1+fc2-R=0.07071067811865475"],
            rows.Select(r => $"{r.A.Name} − {r.B.Name}"));
        // fc1 − fc2: −1, 0, −2 (mean −1, sd 1, t = −√3); fc1 − both: 2, 3, 2 (mean 7/3, sd 1/√3, t = 7);
        // fc2 − both: 3, 3, 4 (mean 10/3, t = 10).
        Assert.Equal(-1.0, rows[0].Comparison.MeanDifference, 9);
        Assert.Equal(7.0 / 3, rows[1].Comparison.MeanDifference, 9);
        Assert.Equal(10.0 / 3, rows[2].Comparison.MeanDifference, 9);
        // Student's t on 2 df: two-sided p = 1 − |t|/√(t² + 2).
        double pA = 1 - Math.Sqrt(3) / Math.Sqrt(5), pB = 1 - 7 / Math.Sqrt(51), pC = 1 - 10 / Math.Sqrt(102);
        Assert.Equal(pA, rows[0].Comparison.TPValue, 9);
        Assert.Equal(pB, rows[1].Comparison.TPValue, 9);
        Assert.Equal(pC, rows[2].Comparison.TPValue, 9);
        // Holm over three: ascending pC, pB, pA multiplied by 3, 2, 1, each at least the one before.
        Assert.Equal(3 * pC, rows[2].HolmTPValue, 9);
        Assert.Equal(Math.Max(3 * pC, 2 * pB), rows[1].HolmTPValue, 9);
        Assert.Equal(Math.Max(2 * pB, pA), rows[0].HolmTPValue, 9);
    }

    [Fact]
    public void Against_plain_cross_entropy_the_final_p_values_are_Holm_adjusted_over_the_table()
    {
        var ce = new Point("ce", [], 0);
        Outcome Run(Point p, int seed, double final) => new(p, seed, 0.99, 1, final / 100, 0, 0, 0, []);
        // ce 80, 81, 82; a: 81, 83, 82 (differences 1, 2, 0: t = √3); b: 82, 84, 86 (2, 3, 4: t = 3√3).
        var a = new Point("pla", ["fc1"], 0.01);
        var b = new Point("pla", ["fc2"], 0.01);
        var summaries = Summarise([Run(ce, 1, 80), Run(ce, 2, 81), Run(ce, 3, 82), Run(a, 1, 81), Run(a, 2, 83), Run(a, 3, 82), Run(b, 1, 82), Run(b, 2, 84), Run(b, 3, 86)]);
        double pA = 1 - Math.Sqrt(3) / Math.Sqrt(5), pB = 1 - 3 * Math.Sqrt(3) / Math.Sqrt(29);
        Assert.True(double.IsNaN(summaries.Single(s => s.Point.IsPlain).FinalHolmTPValue));
        Assert.Equal(2 * pB, summaries.Single(s => s.Point == b).FinalHolmTPValue, 9);
        Assert.Equal(Math.Max(pA, 2 * pB), summaries.Single(s => s.Point == a).FinalHolmTPValue, 9);
    }
}
