using System.Globalization;
using System.Text;
using Thermo.Analysis.Statistics;

namespace Thermo.Pipeline.Pruning;

/// <summary>One row of the aggregated table: mean ± sample standard deviation over runs.</summary>
public sealed record TableRow(
    Criterion Criterion, Experiment Experiment, string Label, int Runs,
    double AccuracyMean, double AccuracyStd, double LossMean, double LossStd);

/// <summary>
/// One comparison a reader of the table makes — row A against row B — paired across the runs that have
/// both: the per-run differences of test accuracy in percentage points, with their statistics.
/// </summary>
/// <remarks>
/// <see cref="HolmTPValue"/> and <see cref="HolmWilcoxonPValue"/> are the p-values adjusted over the table's
/// family of comparisons (Holm). <see cref="Equivalence"/> tests whether the difference lies within a margin
/// stated before looking at the data (<see cref="Aggregation.EquivalenceMargin"/>); null with fewer than two runs.
/// </remarks>
public sealed record RowComparison(string Name, Criterion CriterionA, Experiment ExperimentA, Criterion CriterionB, Experiment ExperimentB, PairedComparison Accuracy,
    double HolmTPValue = double.NaN, double HolmWilcoxonPValue = double.NaN, EquivalenceTest? Equivalence = null);

/// <summary>Two prune-fraction curves compared at one number of filters removed, paired by run (accuracy points, A − B),
/// with p-values Holm-adjusted over the comparison's numbers of filters.</summary>
public sealed record CurveComparison(string Name, string Layer, int Removed, PairedComparison Accuracy, double HolmTPValue, double HolmWilcoxonPValue);

/// <summary>Aggregation over runs and the paper's table layout.</summary>
public static class Aggregation
{
    /// <summary>Mean and sample standard deviation (n − 1); the deviation is NaN for fewer than two values.</summary>
    public static (double Mean, double Std) MeanAndSampleStd(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return (double.NaN, double.NaN);
        double mean = values.Average();
        if (values.Count < 2) return (mean, double.NaN);
        double ss = values.Sum(v => (v - mean) * (v - mean));
        return (mean, Math.Sqrt(ss / (values.Count - 1)));
    }

    /// <summary>The table: per criterion and experiment, each run's value (the mean over its random
    /// draws, for random) aggregated as mean ± sample std over runs, in the paper's row order.</summary>
    public static IReadOnlyList<TableRow> Table(IEnumerable<PruningResult> results, int k, int m)
    {
        var rows = new List<TableRow>();
        foreach (var byCriterion in results.GroupBy(r => r.Criterion).OrderBy(g => g.Key))
            foreach (var byExperiment in byCriterion.GroupBy(r => r.Experiment).OrderBy(g => g.Key))
            {
                var perRun = byExperiment.GroupBy(r => r.Run)
                    .Select(g => (Accuracy: g.Average(r => r.Accuracy), Loss: g.Average(r => r.Loss))).ToList();
                var (accuracy, accuracyStd) = MeanAndSampleStd(perRun.Select(p => p.Accuracy).ToList());
                var (loss, lossStd) = MeanAndSampleStd(perRun.Select(p => p.Loss).ToList());
                rows.Add(new TableRow(byCriterion.Key, byExperiment.Key, PruningPlan.Label(byExperiment.Key, byCriterion.Key, k, m),
                    perRun.Count, accuracy, accuracyStd, loss, lossStd));
            }
        return rows;
    }

    /// <summary>The comparisons behind the paper's claims, each A − B (positive: A keeps more accuracy).</summary>
    public static readonly (string Name, Criterion CriterionA, Experiment A, Criterion CriterionB, Experiment B)[] StandardComparisons =
    [
        ("without hottest − without coldest", Criterion.Temperature, Experiment.WithoutHottest, Criterion.Temperature, Experiment.WithoutColdest),
        ("only coldest − only hottest", Criterion.Temperature, Experiment.OnlyColdest, Criterion.Temperature, Experiment.OnlyHottest),
        ("without hottest − without random", Criterion.Temperature, Experiment.WithoutHottest, Criterion.Random, Experiment.WithoutHottest),
        ("only hottest − only random", Criterion.Temperature, Experiment.OnlyHottest, Criterion.Random, Experiment.OnlyHottest),
    ];

    /// <summary>
    /// The standard comparisons present in <paramref name="results"/>, paired by run (a random row is
    /// each run's mean over its draws): mean difference in accuracy points, sample sd, 95 % t interval,
    /// paired t and exact Wilcoxon signed-rank p-values.
    /// </summary>
    public static IReadOnlyList<RowComparison> Comparisons(IEnumerable<PruningResult> results)
    {
        var perRun = results.GroupBy(r => (r.Criterion, r.Experiment, r.Run)).ToDictionary(g => g.Key, g => g.Average(r => r.Accuracy));
        var runs = perRun.Keys.Select(k => k.Run).Distinct().Order(StringComparer.Ordinal).ToList();
        var comparisons = new List<RowComparison>();
        foreach (var (name, ca, ea, cb, eb) in StandardComparisons)
        {
            var paired = runs.Where(run => perRun.ContainsKey((ca, ea, run)) && perRun.ContainsKey((cb, eb, run))).ToList();
            if (paired.Count == 0) continue;
            var stats = PairedTests.Compare(paired.Select(run => 100 * perRun[(ca, ea, run)]).ToArray(), paired.Select(run => 100 * perRun[(cb, eb, run)]).ToArray());
            var equivalence = stats.Runs >= 2 ? MultipleTests.Equivalence(stats.Differences, EquivalenceMargin(ea)) : null;
            comparisons.Add(new RowComparison(name, ca, ea, cb, eb, stats, Equivalence: equivalence));
        }
        // One family per table: its comparisons are the claims the table supports, corrected together.
        var holmT = MultipleTests.Holm(comparisons.Select(c => c.Accuracy.TPValue).ToArray());
        var holmW = MultipleTests.Holm(comparisons.Select(c => c.Accuracy.WilcoxonPValue).ToArray());
        return comparisons.Select((c, i) => c with { HolmTPValue = holmT[i], HolmWilcoxonPValue = holmW[i] }).ToList();
    }

    /// <summary>
    /// The equivalence margin of a comparison, in accuracy points, fixed before any result was tabulated:
    /// 2 points where A removes k filters (a difference a practitioner would ignore), 5 points where A keeps
    /// only m (the rows whose accuracy spreads over tens of points between runs).
    /// </summary>
    public static double EquivalenceMargin(Experiment a) => a is Experiment.WithoutHottest or Experiment.WithoutColdest ? 2.0 : 5.0;

    /// <summary>
    /// The prune-fraction curves of <paramref name="layer"/> tested at each number of filters removed:
    /// temperature's hottest-first order against its coldest-first order and against random orders (each
    /// run's mean over its draws), paired by run, in accuracy points (A − B). Each comparison's p-values are
    /// Holm-adjusted over its numbers of filters, 1 to n − 1 (one family per comparison; none and all removed
    /// are the same model in every order). Points where no run has both orders are left out.
    /// </summary>
    public static IReadOnlyList<CurveComparison> CurveComparisons(IEnumerable<CurvePoint> points, string layer)
    {
        var accuracy = points.Where(p => p.Layer == layer).GroupBy(p => (p.Criterion, p.Order, p.Removed, p.Run))
            .ToDictionary(g => g.Key, g => 100 * g.Average(p => p.Accuracy));
        var runs = accuracy.Keys.Select(k => k.Run).Distinct().Order(StringComparer.Ordinal).ToList();
        // 0 and all filters removed compare identical models in every order: not tests.
        var counts = accuracy.Keys.Select(k => k.Removed).Distinct().Order().ToList();
        var removedCounts = counts.Where(r => r > counts[0] && r < counts[^1]).ToList();
        var families = new (string Name, (Criterion, string) A, (Criterion, string) B)[]
        {
            ("hottest first − coldest first", (Criterion.Temperature, "hottest first"), (Criterion.Temperature, "coldest first")),
            ("hottest first − random", (Criterion.Temperature, "hottest first"), (Criterion.Random, "random")),
        };
        var comparisons = new List<CurveComparison>();
        foreach (var (name, (ca, oa), (cb, ob)) in families)
        {
            var family = new List<CurveComparison>();
            foreach (var removed in removedCounts)
            {
                var paired = runs.Where(r => accuracy.ContainsKey((ca, oa, removed, r)) && accuracy.ContainsKey((cb, ob, removed, r))).ToList();
                if (paired.Count == 0) continue;
                var stats = PairedTests.Compare(paired.Select(r => accuracy[(ca, oa, removed, r)]).ToArray(), paired.Select(r => accuracy[(cb, ob, removed, r)]).ToArray());
                family.Add(new CurveComparison(name, layer, removed, stats, double.NaN, double.NaN));
            }
            var holmT = MultipleTests.Holm(family.Select(c => c.Accuracy.TPValue).ToArray());
            var holmW = MultipleTests.Holm(family.Select(c => c.Accuracy.WilcoxonPValue).ToArray());
            comparisons.AddRange(family.Select((c, i) => c with { HolmTPValue = holmT[i], HolmWilcoxonPValue = holmW[i] }));
        }
        return comparisons;
    }

    /// <summary>The curve comparisons as a Markdown table, one row per comparison and number of filters removed.</summary>
    public static string CurveComparisonsMarkdown(IReadOnlyList<CurveComparison> comparisons)
    {
        if (comparisons.Count == 0) return "";
        var md = new StringBuilder();
        md.AppendLine($"**Prune-fraction curves of {comparisons[0].Layer}, tested at each number of filters removed** (test accuracy, points, A − B paired by run; p-values Holm-adjusted over the numbers of filters of each comparison)").AppendLine();
        md.AppendLine("| comparison (A − B) | filters removed | runs | mean ± sd | 95 % interval | Holm t p | Holm Wilcoxon p |").AppendLine("|---|---|---|---|---|---|---|");
        foreach (var c in comparisons.Where(c => c.Accuracy.Runs >= 2 && !double.IsNaN(c.Accuracy.TPValue)))
            md.AppendLine($"| {c.Name} | {c.Removed} | {c.Accuracy.Runs} | {F(c.Accuracy.MeanDifference)} ± {F(c.Accuracy.StandardDeviation)} | [{F(c.Accuracy.Low95)}, {F(c.Accuracy.High95)}] | {P(c.HolmTPValue)} | {P(c.HolmWilcoxonPValue)} |");
        md.AppendLine();
        return md.ToString();
    }

    static string F(double v, string format = "F2") => double.IsNaN(v) ? "—" : v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>A p-value to three decimals, and below 0.001 in scientific notation rather than a misleading 0.000.</summary>
    /// <summary>A p-value as the tables print it: three decimals, or scientific below 0.001; exactly 0
    /// (differences without spread, where the t statistic is infinite) as 0.</summary>
    public static string P(double p) => double.IsNaN(p) ? "—" : p == 0 ? "0" : p < 0.001 ? p.ToString("0.0e+0", CultureInfo.InvariantCulture) : p.ToString("F3", CultureInfo.InvariantCulture);

    /// <summary>The comparisons as a Markdown table (appended to table.md).</summary>
    public static string ComparisonsMarkdown(IReadOnlyList<RowComparison> comparisons)
    {
        if (comparisons.Count == 0) return "";
        var md = new StringBuilder();
        md.AppendLine("**Paired comparisons across runs** (test accuracy, percentage points; A − B per run: mean ± sample sd, 95 % t interval, two-sided paired t and exact Wilcoxon signed-rank p-values, each also Holm-adjusted over this table's comparisons; equivalence: two one-sided t-tests against ±δ, δ fixed beforehand at 2 points for removing k filters and 5 for keeping m, and the smallest δ these runs could show at 5 %)").AppendLine();
        md.AppendLine("| comparison (A − B) | runs | mean ± sd | 95 % interval | t p | Wilcoxon p | Holm t p | Holm Wilcoxon p | δ | TOST p | smallest δ showable |").AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var c in comparisons)
        {
            var a = c.Accuracy;
            var e = c.Equivalence;
            md.AppendLine($"| {c.Name} | {a.Runs} | {F(a.MeanDifference)} ± {F(a.StandardDeviation)} | [{F(a.Low95)}, {F(a.High95)}] | {P(a.TPValue)} | {P(a.WilcoxonPValue)} | {P(c.HolmTPValue)} | {P(c.HolmWilcoxonPValue)} | {(e is null ? "—" : F(e.Margin, "F0"))} | {(e is null ? "—" : P(e.P))} | {(e is null ? "—" : F(e.SmallestShowableMargin))} |");
        }
        md.AppendLine();
        return md.ToString();
    }

    /// <summary>The comparisons as aligned console text.</summary>
    public static string ComparisonsText(IReadOnlyList<RowComparison> comparisons)
    {
        var text = new StringBuilder();
        if (comparisons.Count == 0) return "";
        text.AppendLine("paired comparisons (test accuracy, points, A − B per run):");
        foreach (var c in comparisons)
        {
            var a = c.Accuracy;
            text.AppendLine($"  {c.Name,-36} {a.Runs,3} runs  {F(a.MeanDifference),7} ± {F(a.StandardDeviation),-6} [{F(a.Low95)}, {F(a.High95)}]  t p {P(a.TPValue)} (Holm {P(c.HolmTPValue)})  Wilcoxon p {P(a.WilcoxonPValue)} (Holm {P(c.HolmWilcoxonPValue)})"
                + (c.Equivalence is { } e ? $"  within ±{F(e.Margin, "F0")}: TOST p {P(e.P)}, smallest showable ±{F(e.SmallestShowableMargin)}" : ""));
        }
        return text.ToString();
    }

    static string Percent(double mean, double std) =>
        string.Create(CultureInfo.InvariantCulture, $"{mean * 100:F2}% ± {(double.IsNaN(std) ? "—" : (std * 100).ToString("F2", CultureInfo.InvariantCulture) + "%")}");

    static string Plain(double mean, double std) =>
        string.Create(CultureInfo.InvariantCulture, $"{mean:F3} ± {(double.IsNaN(std) ? "—" : std.ToString("F3", CultureInfo.InvariantCulture))}");

    /// <summary>The table as Markdown, one block per criterion, in the paper's layout.</summary>
    public static string Markdown(IReadOnlyList<TableRow> rows, string caption)
    {
        var md = new StringBuilder();
        md.AppendLine(caption).AppendLine();
        foreach (var block in rows.GroupBy(r => r.Criterion))
        {
            md.AppendLine($"**Criterion: {PruningPlan.Name(block.Key)}** ({block.First().Runs} runs{(block.Key == Criterion.Random ? ", each the mean of its random draws" : "")})").AppendLine();
            md.AppendLine("| Model | Test accuracy | Test loss |").AppendLine("|---|---|---|");
            foreach (var r in block) md.AppendLine($"| {r.Label} | {Percent(r.AccuracyMean, r.AccuracyStd)} | {Plain(r.LossMean, r.LossStd)} |");
            md.AppendLine();
        }
        return md.ToString();
    }

    /// <summary>The table as aligned console text.</summary>
    public static string Text(IReadOnlyList<TableRow> rows)
    {
        var text = new StringBuilder();
        foreach (var block in rows.GroupBy(r => r.Criterion))
        {
            text.AppendLine($"criterion {PruningPlan.Name(block.Key)} ({block.First().Runs} runs{(block.Key == Criterion.Random ? ", mean of the random draws per run" : "")}):");
            text.AppendLine($"  {"model",-52} {"test accuracy",-18} {"test loss",-15}");
            foreach (var r in block) text.AppendLine($"  {r.Label,-52} {Percent(r.AccuracyMean, r.AccuracyStd),-18} {Plain(r.LossMean, r.LossStd),-15}");
        }
        return text.ToString();
    }
}
