using Thermo.Analysis.Run;
using Thermo.Analysis.Statistics;
using Thermo.Trainer.Evaluation;
using Thermo.Pipeline.Pruning;
using Thermo.Pipeline.Protocols;

namespace Thermo.Pipeline.Tests;

/// <summary>An evaluator whose accuracy is 1 − Σ importance of the zeroed filters; it records every mask.</summary>
sealed class FakeModel(double[] importance) : IMaskedEvaluator
{
    public List<FilterMask> Masks { get; } = [];
    public (double Loss, double Accuracy) Evaluate(FilterMask mask)
    {
        Masks.Add(mask);
        double lost = mask.Units.Sum(u => importance[u]);
        return (lost * 10, 1 - lost);
    }
}

public class PlanTests
{
    static readonly int[] HotFirst = [3, 0, 2, 1, 4];

    [Fact]
    public void Each_experiment_zeroes_the_filters_the_paper_names()
    {
        Assert.Empty(PruningPlan.Zeroed(Experiment.Original, HotFirst, 2, 3));
        Assert.Equal([0, 3], PruningPlan.Zeroed(Experiment.WithoutHottest, HotFirst, 2, 3));
        Assert.Equal([1, 4], PruningPlan.Zeroed(Experiment.OnlyHottest, HotFirst, 2, 3));    // keeps 3, 0, 2
        Assert.Equal([1, 4], PruningPlan.Zeroed(Experiment.WithoutColdest, HotFirst, 2, 3));
        Assert.Equal([0, 3], PruningPlan.Zeroed(Experiment.OnlyColdest, HotFirst, 2, 3));    // keeps 2, 1, 4
    }

    [Theory]
    [InlineData(0, 3)]
    [InlineData(5, 3)]
    [InlineData(2, 5)]
    public void K_and_m_outside_the_layer_are_refused(int k, int m) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => PruningPlan.Zeroed(Experiment.WithoutHottest, HotFirst, k, m));

    [Fact]
    public void Orders_follow_their_criterion()
    {
        var scores = new FilterScores("conv1", [0.1, 0.5, 0.3], [0.3, 0.1, 0.2], [2.0, 1.0, 3.0]);
        Assert.Equal([1, 2, 0], PruningPlan.HotFirst(scores, Criterion.Temperature));
        Assert.Equal([0, 2, 1], PruningPlan.HotFirst(scores, Criterion.Oscillation));
        Assert.Equal([2, 0, 1], PruningPlan.HotFirst(scores, Criterion.L1));   // "coldest" = smallest L1 (Li et al.)
    }

    [Fact]
    public void Random_orders_are_permutations_fixed_by_the_draw()
    {
        var scores = new FilterScores("conv1", new double[12], new double[12], new double[12]);
        var a = PruningPlan.HotFirst(scores, Criterion.Random, 0);
        Assert.Equal(Enumerable.Range(0, 12), a.Order());
        Assert.Equal(a, PruningPlan.HotFirst(scores, Criterion.Random, 0));
        Assert.NotEqual(a, PruningPlan.HotFirst(scores, Criterion.Random, 1));
    }

    [Fact]
    public void Each_run_gets_its_own_random_orders_fixed_by_its_seed()
    {
        var scores = new FilterScores("conv1", new double[12], new double[12], new double[12], RunSeed: 1);
        var draws = Enumerable.Range(0, 5).Select(d => PruningPlan.HotFirst(scores, Criterion.Random, d)).ToList();
        var otherRun = Enumerable.Range(0, 5).Select(d => PruningPlan.HotFirst(scores with { RunSeed = 2 }, Criterion.Random, d)).ToList();
        var sameRun = Enumerable.Range(0, 5).Select(d => PruningPlan.HotFirst(scores with { }, Criterion.Random, d)).ToList();
        for (int d = 0; d < 5; d++)
        {
            Assert.Equal(draws[d], sameRun[d]);
            Assert.NotEqual(draws[d], otherRun[d]);
        }
    }
}

public class AggregationTests
{
    [Fact]
    public void Mean_and_sample_standard_deviation_against_hand_values()
    {
        var (mean, std) = Aggregation.MeanAndSampleStd([1.0, 2.0, 3.0, 4.0]);
        Assert.Equal(2.5, mean, 12);
        Assert.Equal(Math.Sqrt(5.0 / 3.0), std, 12);   // Σ(x − 2.5)² = 5, over n − 1 = 3
        Assert.True(double.IsNaN(Aggregation.MeanAndSampleStd([7.0]).Std));
    }

    [Fact]
    public void Random_draws_are_averaged_within_a_run_before_runs_are_aggregated()
    {
        PruningResult Row(string run, int draw, double accuracy) =>
            new(run, "conv1", Criterion.Random, draw, Experiment.WithoutHottest, [0], 1 - accuracy, accuracy);
        var rows = Aggregation.Table([Row("a", 0, 0.5), Row("a", 1, 0.7), Row("b", 0, 0.9), Row("b", 1, 0.9)], 2, 3);
        var row = Assert.Single(rows);
        Assert.Equal(2, row.Runs);
        Assert.Equal(0.75, row.AccuracyMean, 12);                        // runs: 0.6 and 0.9
        Assert.Equal(Math.Sqrt(2 * 0.15 * 0.15), row.AccuracyStd, 12);
    }
}

public class RunnerTests
{
    static readonly double[] Importance = [0.01, 0.2, 0.05, 0.3, 0.02];
    static readonly FilterScores Scores = new("conv1", [5, 1, 4, 0.5, 3], [5, 1, 4, 0.5, 3], [1, 9, 2, 8, 3]);

    [Fact]
    public void The_table_has_every_row_of_every_criterion_and_draw()
    {
        var model = new FakeModel(Importance);
        var runner = new PruningRunner("run", model);
        var results = runner.Table(Scores, new PruningOptions("conv1", Enum.GetValues<Criterion>(), K: 2, M: 3, RandomDraws: 5));
        Assert.Equal((3 + 5) * 5, results.Count);   // temperature, oscillation, l1 once; random 5 draws; 5 experiments each
        Assert.All(results, r => Assert.Equal(5, r.Filters));
        // hottest by temperature: 0 and 2 (T = 5, 4); removing them costs 0.01 + 0.05
        var withoutHot = results.Single(r => r.Criterion == Criterion.Temperature && r.Experiment == Experiment.WithoutHottest);
        Assert.Equal([0, 2], withoutHot.Zeroed);
        Assert.Equal(1 - 0.06, withoutHot.Accuracy, 12);
        var withoutCold = results.Single(r => r.Criterion == Criterion.Temperature && r.Experiment == Experiment.WithoutColdest);
        Assert.Equal([1, 3], withoutCold.Zeroed);
        Assert.Equal(1 - 0.5, withoutCold.Accuracy, 12);
        // the same zeroed set is evaluated once (temperature and oscillation orders coincide here)
        Assert.Equal(model.Masks.Select(m => string.Join(",", m.Units)).Distinct().Count(), model.Masks.Count);
        Assert.Equal(runner.Evaluations, model.Masks.Count);
        Assert.All(model.Masks, m => Assert.Equal("conv1", m.Layer));
    }

    [Fact]
    public void Curves_remove_zero_to_all_filters_in_each_order()
    {
        var runner = new PruningRunner("run", new FakeModel(Importance));
        var points = runner.Curves(Scores, [Criterion.Temperature, Criterion.L1, Criterion.Random], randomDraws: 2);
        Assert.Equal((2 + 2 + 2) * 6, points.Count);
        Assert.All(points.Where(p => p.Removed == 0), p => Assert.Equal(1.0, p.Accuracy, 12));
        Assert.All(points.Where(p => p.Removed == 5), p => Assert.Equal(1 - Importance.Sum(), p.Accuracy, 12));
        var coldestFirst = points.Where(p => p.Order == "coldest first").OrderBy(p => p.Removed).ToList();
        Assert.Equal(1 - 0.3, coldestFirst[1].Accuracy, 12);   // filter 3 (T = 0.5) goes first
        var smallestL1 = points.Where(p => p.Order == "smallest first").OrderBy(p => p.Removed).ToList();
        Assert.Equal(1 - 0.01, smallestL1[1].Accuracy, 12);    // filter 0 (L1 = 1) goes first
    }

    [Fact]
    public void A_layer_too_small_for_k_or_m_is_named()
    {
        var runner = new PruningRunner("run-7", new FakeModel(Importance));
        var e = Assert.Throws<ArgumentException>(() => runner.Table(Scores, new PruningOptions("conv1", [Criterion.Temperature], K: 2, M: 5)));
        Assert.Contains("run-7", e.Message);
        Assert.Contains("5 filters", e.Message);
    }
}

public class FileTests
{
    [Fact]
    public void Results_read_back_as_written()
    {
        var dir = Directory.CreateTempSubdirectory("thermo-pipeline-tests-").FullName;
        try
        {
            var runner = new PruningRunner("run", new FakeModel([0.1, 0.2, 0.3, 0.4]));
            var results = runner.Table(new FilterScores("conv1", [4, 3, 2, 1], [1, 2, 3, 4], [1, 1, 1, 1]), new PruningOptions("conv1", Enum.GetValues<Criterion>(), 1, 2, 5));
            var path = Path.Combine(dir, "pruning", RunLayout.ResultsFile);
            PruningFiles.WriteResults(path, results, 1, 2);
            var back = PruningFiles.ReadResults(path);
            Assert.Equal(results.Count, back.Count);
            for (int i = 0; i < results.Count; i++)
            {
                Assert.Equal(results[i] with { Zeroed = [] }, back[i] with { Zeroed = [] });
                Assert.Equal(results[i].Zeroed, back[i].Zeroed);
            }
            Assert.Contains("Without the 1 \"hottest\" filters", Aggregation.Markdown(Aggregation.Table(back, 1, 2), "caption"));
        }
        finally { Directory.Delete(dir, true); }
    }
}

public class ComparisonTests
{
    static PruningResult R(string run, Criterion c, Experiment e, double accuracy, int draw = 0) => new(run, "conv1", c, draw, e, [], 0.1, accuracy);

    [Fact]
    public void Paired_comparisons_pair_rows_by_run_and_average_random_draws_first()
    {
        // runs a/seed-1 and b/seed-1 share a directory name; they are still two runs
        string[] runs = ["a/seed-1", "b/seed-1", "c"];
        double[] hottestOut = [0.90, 0.80, 0.85], coldestOut = [0.95, 0.82, 0.80];
        var results = new List<PruningResult>();
        for (int i = 0; i < 3; i++)
        {
            results.Add(R(runs[i], Criterion.Temperature, Experiment.WithoutHottest, hottestOut[i]));
            results.Add(R(runs[i], Criterion.Temperature, Experiment.WithoutColdest, coldestOut[i]));
            // two random draws whose mean is 0.5 + 0.1 i
            results.Add(R(runs[i], Criterion.Random, Experiment.WithoutHottest, 0.45 + 0.1 * i, 0));
            results.Add(R(runs[i], Criterion.Random, Experiment.WithoutHottest, 0.55 + 0.1 * i, 1));
        }
        var comparisons = Aggregation.Comparisons(results);
        var hotCold = comparisons.Single(c => c.Name == "without hottest − without coldest").Accuracy;
        Assert.Equal(3, hotCold.Runs);
        // differences in points: −5, −2, +5 (runs in path order a/seed-1, b/seed-1, c)
        Assert.Equal(new[] { -5.0, -2.0, 5.0 }, hotCold.Differences.Select(d => Math.Round(d, 9)));
        Assert.Equal(-2.0 / 3, hotCold.MeanDifference, 9);
        var random = comparisons.Single(c => c.Name == "without hottest − without random").Accuracy;
        Assert.Equal(new[] { 40.0, 20.0, 15.0 }, random.Differences.Select(d => Math.Round(d, 9)));
        Assert.DoesNotContain(comparisons, c => c.Name.StartsWith("only"));  // no "only" rows in these results
        Assert.Equal(3, Aggregation.Table(results, 2, 3).First().Runs);
        var markdown = Aggregation.ComparisonsMarkdown(comparisons);
        Assert.Contains("| without hottest − without coldest | 3 | -0.67 ± 5.13 |", markdown);

        // The table's two comparisons are one family: Holm doubles the smaller p-value, and the larger
        // becomes the larger of itself and that.
        var (p1, p2) = (hotCold.TPValue, random.TPValue);
        var (small, large) = (Math.Min(p1, p2), Math.Max(p1, p2));
        var adjusted = (Math.Min(1, 2 * small), Math.Max(Math.Min(1, 2 * small), large));
        var byName = comparisons.ToDictionary(c => c.Name);
        Assert.Equal(p1 < p2 ? adjusted.Item1 : adjusted.Item2, byName["without hottest − without coldest"].HolmTPValue, 12);
        Assert.Equal(p1 < p2 ? adjusted.Item2 : adjusted.Item1, byName["without hottest − without random"].HolmTPValue, 12);
        // Removing filters: equivalence within ±2 points; the differences −5, −2, +5 cannot show it.
        var equivalence = byName["without hottest − without coldest"].Equivalence!;
        Assert.Equal(2.0, equivalence.Margin);
        Assert.True(equivalence.P > 0.05);
        Assert.True(equivalence.SmallestShowableMargin > 2.0);
    }

    [Fact]
    public void Prune_fraction_curves_are_compared_at_each_number_of_filters_removed_with_Holm_over_the_numbers()
    {
        // Three runs, three filters: hottest-first loses 10 points per filter more than coldest-first, ± run noise.
        var points = new List<CurvePoint>();
        string[] runs = ["r1", "r2", "r3"];
        double[] noise = [0.01, -0.02, 0.005];
        for (int i = 0; i < runs.Length; i++)
            for (int removed = 0; removed <= 3; removed++)
            {
                points.Add(new CurvePoint(runs[i], "conv1", Criterion.Temperature, "hottest first", 0, removed, 0, 0.9 - 0.2 * removed + noise[i] * removed));
                points.Add(new CurvePoint(runs[i], "conv1", Criterion.Temperature, "coldest first", 0, removed, 0, 0.9 - 0.1 * removed));
                foreach (var draw in new[] { 0, 1 })
                    points.Add(new CurvePoint(runs[i], "conv1", Criterion.Random, "random", draw, removed, 0, 0.9 - (0.1 + 0.04 * draw) * removed));
                points.Add(new CurvePoint(runs[i], "conv2", Criterion.Temperature, "hottest first", 0, removed, 0, 0.5));
            }
        var comparisons = Aggregation.CurveComparisons(points, "conv1");
        var hotCold = comparisons.Where(c => c.Name == "hottest first − coldest first").ToList();
        // none and all removed are the same model in every order: tested at 1 and 2 only
        Assert.Equal([1, 2], hotCold.Select(c => c.Removed));
        // at 2 removed: (−0.4 + 2·noise) − (−0.2) per run, in points
        Assert.Equal(new[] { -18.0, -24.0, -19.0 }, hotCold[1].Accuracy.Differences.Select(d => Math.Round(d, 9)));
        // random: each run's mean over its draws, 0.9 − 0.12·removed
        var random = comparisons.Single(c => c.Name == "hottest first − random" && c.Removed == 1);
        Assert.Equal(new[] { -7.0, -10.0, -7.5 }, random.Accuracy.Differences.Select(d => Math.Round(d, 9)));
        // Holm over the numbers of filters of each comparison, against the library's own adjustment
        var expected = MultipleTests.Holm(hotCold.Select(c => c.Accuracy.TPValue).ToArray());
        Assert.Equal(expected, hotCold.Select(c => c.HolmTPValue));
        Assert.Contains("| hottest first − coldest first | 2 | 3 |", Aggregation.CurveComparisonsMarkdown(comparisons));
    }
}

/// <summary>A condition's directory name names every setting and data set that differs from the protocol's defaults.</summary>
public class ConditionNameTests
{
    [Theory]
    [InlineData(0.001, 0.0, 0.0, 1e-8, "default", "mnist-10k", null, "l2=0.001")]
    [InlineData(0.0, 0.0, 0.03, 1e-7, "xavier", "mnist-10k", null, "lr-decay=0.03-adam-eps=1E-07-init=xavier")]
    [InlineData(0.0, 0.0, 0.004, 1e-7, "xavier", "mnist", null, "lr-decay=0.004-adam-eps=1E-07-init=xavier-data=mnist")]
    [InlineData(0.0, 0.0, 0.03, 1e-7, "xavier", "mnist", 8004, "lr-decay=0.03-adam-eps=1E-07-init=xavier-data=mnist-train=8004")]
    [InlineData(0.0, 0.0, 0.0, 1e-8, "default", "mnist-10k", 1000, "l2=0-data=mnist-10k-train=1000")]
    [InlineData(0.001, 0.0005, 0.0, 1e-8, "default", "fashion-mnist", null, "l2=0.001-weight-decay=0.0005-data=fashion-mnist")]
    public void Settings_other_than_the_defaults_are_named_in_order(double l2, double weightDecay, double lrDecay, double adamEps, string init, string dataset, int? trainLimit, string expected) =>
        Assert.Equal(expected, PruningPaperReproduction.ConditionName(l2, weightDecay, lrDecay, adamEps, init, dataset, trainLimit));
}
