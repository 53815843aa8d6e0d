using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;

namespace Thermo.Pipeline.Pruning;

/// <summary>The pipeline's files: the analysis tables it reads, the result tables it writes.</summary>
public static class PruningFiles
{
    /// <summary>The results table's file name (<see cref="RunLayout.ResultsFile"/>; paths: <see cref="RunLayout.PruningResults"/>).</summary>
    public const string ResultsTable = "pruning";
    public const string CurvesTable = "prune_curves";

    /// <summary>Per-filter equilibrium and oscillation temperatures of <paramref name="layer"/> from the
    /// run's analysis (<see cref="AnalysisTables.UnitTemperatures"/>), with the window they were measured over.</summary>
    public static (double[] Temperature, double[] Oscillation, int WindowFrom, int WindowTo) ReadTemperatures(string run, string layer)
    {
        var t = AnalysisTables.UnitTemperatures(run, layer);
        return (t.Temperature, t.Oscillation, t.WindowFrom, t.WindowTo);
    }

    /// <summary>The files of a table set (<see cref="WriteTableSet"/>).</summary>
    static readonly string[] TableSetFiles = [RunLayout.ResultsFile, RunLayout.ComparisonsFile, RunLayout.TableFile];

    /// <summary>
    /// Writes a set of runs' table — results, paired comparisons and the Markdown table — as one directory
    /// that appears whole or not at all (<see cref="AtomicFiles.ReplaceDirectory(string, Action{string})"/>).
    /// A directory holding anything else is not replaced (<see cref="ArtifactException"/>), so a mistaken
    /// target loses nothing.
    /// </summary>
    public static void WriteTableSet(string directory, IReadOnlyList<PruningResult> results, IReadOnlyList<RowComparison> comparisons, string markdown, int k, int m)
    {
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName)
                .FirstOrDefault(n => !TableSetFiles.Contains(n) && !System.Text.RegularExpressions.Regex.IsMatch(n!, @"^\..+\.\d+\.([0-9a-f]{32}\.)?(tmp|old)$")) is { } other)
            throw new ArtifactException($"{directory}: holds {other}, which is not a pruning table's; give a directory of its own for the table", directory);
        AtomicFiles.ReplaceDirectory(directory, temp =>
        {
            WriteResults(Path.Combine(temp, RunLayout.ResultsFile), results, k, m);
            WriteComparisons(Path.Combine(temp, RunLayout.ComparisonsFile), comparisons);
            AtomicFiles.WriteAllText(Path.Combine(temp, RunLayout.TableFile), markdown);
        });
    }

    /// <summary>Writes the table's evaluations (one row per run × criterion × draw × experiment), atomically.</summary>
    public static void WriteResults(string path, IReadOnlyList<PruningResult> results, int k, int m)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Table.Write(path, ResultsTable,
            Column.Strings("run", results.Select(r => r.Run).ToArray()),
            Column.Strings("layer", results.Select(r => r.Layer).ToArray()),
            Column.Strings("criterion", results.Select(r => PruningPlan.Name(r.Criterion)).ToArray()),
            Column.Ints("draw", results.Select(r => r.Draw).ToArray()),
            Column.Strings("experiment", results.Select(r => r.Experiment.ToString()).ToArray()),
            Column.Strings("label", results.Select(r => PruningPlan.Label(r.Experiment, r.Criterion, k, m)).ToArray()),
            Column.Strings("zeroed_filters", results.Select(r => string.Join(",", r.Zeroed)).ToArray()),
            Column.Ints("filters", results.Select(r => r.Filters).ToArray()),
            Column.Doubles("test_accuracy", results.Select(r => r.Accuracy).ToArray()),
            Column.Doubles("test_loss", results.Select(r => r.Loss).ToArray()));
    }

    /// <summary>Reads a results table written by <see cref="WriteResults"/>.</summary>
    public static IReadOnlyList<PruningResult> ReadResults(string path)
    {
        var columns = Table.Read(path, ResultsTable);
        var run = Table.GetStrings(columns, "run", path);
        var layer = Table.GetStrings(columns, "layer", path);
        var criterion = Table.GetStrings(columns, "criterion", path);
        var draw = Table.GetInts(columns, "draw", path);
        var experiment = Table.GetStrings(columns, "experiment", path);
        var zeroed = Table.GetStrings(columns, "zeroed_filters", path);
        var accuracy = Table.GetDoubles(columns, "test_accuracy", path);
        var loss = Table.GetDoubles(columns, "test_loss", path);
        // tables written before the column existed read as 0 (unknown)
        var filters = columns.ContainsKey("filters") ? Table.GetInts(columns, "filters", path) : new int[run.Length];
        return Enumerable.Range(0, run.Length).Select(i => new PruningResult(
            run[i], layer[i],
            PruningPlan.Parse(criterion[i]) ?? throw new ArtifactException($"{path}: unknown criterion '{criterion[i]}'", path),
            draw[i],
            Enum.TryParse<Experiment>(experiment[i], out var e) ? e : throw new ArtifactException($"{path}: unknown experiment '{experiment[i]}'", path),
            zeroed[i].Length == 0 ? [] : zeroed[i].Split(',').Select(int.Parse).ToArray(),
            loss[i], accuracy[i], filters[i])).ToList();
    }

    /// <summary>Reads prune-fraction curves written by <see cref="WriteCurves"/>.</summary>
    public static IReadOnlyList<CurvePoint> ReadCurves(string path)
    {
        if (!File.Exists(path)) throw new NotWrittenException(path, "no prune-fraction curves", nameof(PruneSettings.Curves));
        var t = Table.Read(path, CurvesTable);
        var run = Table.GetStrings(t, "run", path);
        var layer = Table.GetStrings(t, "layer", path);
        var criterion = Table.GetStrings(t, "criterion", path);
        var order = Table.GetStrings(t, "order", path);
        var draw = Table.GetInts(t, "draw", path);
        var removed = Table.GetInts(t, "removed", path);
        var accuracy = Table.GetDoubles(t, "test_accuracy", path);
        var loss = Table.GetDoubles(t, "test_loss", path);
        return Enumerable.Range(0, run.Length).Select(i => new CurvePoint(run[i], layer[i],
            PruningPlan.Parse(criterion[i]) ?? throw new ArtifactException($"{path}: unknown criterion '{criterion[i]}'", path),
            order[i], draw[i], removed[i], loss[i], accuracy[i])).ToList();
    }

    /// <summary>Writes prune-fraction curves, atomically.</summary>
    public static void WriteCurves(string path, IReadOnlyList<CurvePoint> points)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Table.Write(path, CurvesTable,
            Column.Strings("run", points.Select(p => p.Run).ToArray()),
            Column.Strings("layer", points.Select(p => p.Layer).ToArray()),
            Column.Strings("criterion", points.Select(p => PruningPlan.Name(p.Criterion)).ToArray()),
            Column.Strings("order", points.Select(p => p.Order).ToArray()),
            Column.Ints("draw", points.Select(p => p.Draw).ToArray()),
            Column.Ints("removed", points.Select(p => p.Removed).ToArray()),
            Column.Doubles("test_accuracy", points.Select(p => p.Accuracy).ToArray()),
            Column.Doubles("test_loss", points.Select(p => p.Loss).ToArray()));
    }

    /// <summary>Table kind of comparisons.parquet.</summary>
    public const string ComparisonsTable = "pruning_comparisons";

    /// <summary>Writes the paired comparisons (one row per comparison; differences in accuracy points), atomically.</summary>
    public static void WriteComparisons(string path, IReadOnlyList<RowComparison> comparisons)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Table.Write(path, ComparisonsTable,
            Column.Strings("comparison", comparisons.Select(c => c.Name).ToArray()),
            Column.Strings("criterion_a", comparisons.Select(c => PruningPlan.Name(c.CriterionA)).ToArray()),
            Column.Strings("experiment_a", comparisons.Select(c => c.ExperimentA.ToString()).ToArray()),
            Column.Strings("criterion_b", comparisons.Select(c => PruningPlan.Name(c.CriterionB)).ToArray()),
            Column.Strings("experiment_b", comparisons.Select(c => c.ExperimentB.ToString()).ToArray()),
            Column.Ints("runs", comparisons.Select(c => c.Accuracy.Runs).ToArray()),
            Column.Doubles("mean_difference_points", comparisons.Select(c => c.Accuracy.MeanDifference).ToArray()),
            Column.Doubles("sd_points", comparisons.Select(c => c.Accuracy.StandardDeviation).ToArray()),
            Column.Doubles("low95_points", comparisons.Select(c => c.Accuracy.Low95).ToArray()),
            Column.Doubles("high95_points", comparisons.Select(c => c.Accuracy.High95).ToArray()),
            Column.Doubles("t_p_value", comparisons.Select(c => c.Accuracy.TPValue).ToArray()),
            Column.Doubles("wilcoxon_p_value", comparisons.Select(c => c.Accuracy.WilcoxonPValue).ToArray()),
            Column.Doubles("holm_t_p_value", comparisons.Select(c => c.HolmTPValue).ToArray()),
            Column.Doubles("holm_wilcoxon_p_value", comparisons.Select(c => c.HolmWilcoxonPValue).ToArray()),
            Column.Doubles("equivalence_margin_points", comparisons.Select(c => c.Equivalence?.Margin ?? double.NaN).ToArray()),
            Column.Doubles("tost_p_value", comparisons.Select(c => c.Equivalence?.P ?? double.NaN).ToArray()),
            Column.Doubles("smallest_showable_margin_points", comparisons.Select(c => c.Equivalence?.SmallestShowableMargin ?? double.NaN).ToArray()),
            Column.Strings("differences_points", comparisons.Select(c => string.Join(",", c.Accuracy.Differences.Select(d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))).ToArray()));
    }
}
