using System.Globalization;
using System.Text;

namespace Thermo.Pipeline.Pruning;

/// <summary>One row of the aggregated table: mean ± sample standard deviation over runs.</summary>
public sealed record TableRow(
    Criterion Criterion, Experiment Experiment, string Label, int Runs,
    double AccuracyMean, double AccuracyStd, double LossMean, double LossStd);

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
