using Microsoft.FSharp.Collections;
using Thermo.Analysis;

namespace Thermo.Pipeline.Pruning;

/// <summary>The pipeline's files: the analysis tables it reads, the result tables it writes.</summary>
public static class PruningFiles
{
    /// <summary>Directory of a run's pruning results.</summary>
    public const string Directory = "pruning";
    public const string ResultsFile = "results.parquet";
    public const string CurvesFile = "curves.parquet";
    public const string ResultsTable = "pruning";
    public const string CurvesTable = "prune_curves";

    /// <summary>Per-filter equilibrium and oscillation temperatures of <paramref name="layer"/> from the
    /// run's analysis/temperature.parquet, with the window they were measured over.</summary>
    public static (double[] Temperature, double[] Oscillation, int WindowFrom, int WindowTo) ReadTemperatures(string run, string layer)
    {
        var path = Path.Combine(run, AnalysisOutput.Directory, "temperature.parquet");
        if (!File.Exists(path))
            throw new ArtifactException($"{run}: not analysed (no {Path.Combine(AnalysisOutput.Directory, "temperature.parquet")}); run `thermo analyze {run} --window last:N` first, or prune with --analyze last:N");
        var columns = TableColumns.Read(path, "temperature");
        T[] Get<T>(string name) => TableColumns.Get<T>(columns, name, path);
        var layers = Get<string>("layer");
        var grouping = Get<string>("grouping");
        var units = Get<int>("unit");
        var t = Get<double>("temperature");
        var osc = Get<double>("oscillation_temperature");
        var from = Get<int>("window_from");
        var to = Get<int>("window_to");
        var rows = Enumerable.Range(0, layers.Length).Where(i => layers[i] == layer && grouping[i] == "unit").OrderBy(i => units[i]).ToArray();
        if (rows.Length == 0)
        {
            var analysed = layers.Where((l, i) => grouping[i] == "unit").Distinct();
            throw new ArtifactException($"{path}: no per-filter temperatures of layer '{layer}' (per-filter layers analysed: {string.Join(", ", analysed)}); analyse with --groups filter --layers {layer}");
        }
        if (rows.Select(i => units[i]).Where((u, j) => u != j).Any())
            throw new ArtifactException($"{path}: the filters of layer '{layer}' are not numbered 0..{rows.Length - 1}");
        return (rows.Select(i => t[i]).ToArray(), rows.Select(i => osc[i]).ToArray(), from[rows[0]], to[rows[0]]);
    }

    static FSharpList<Column> List(params Column[] columns) => ListModule.OfArray(columns);

    /// <summary>Writes the table's evaluations (one row per run × criterion × draw × experiment), atomically.</summary>
    public static void WriteResults(string path, IReadOnlyList<PruningResult> results, int k, int m)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Tables.Write(path, ResultsTable, List(
            Column.NewStringColumn("run", results.Select(r => r.Run).ToArray()),
            Column.NewStringColumn("layer", results.Select(r => r.Layer).ToArray()),
            Column.NewStringColumn("criterion", results.Select(r => PruningPlan.Name(r.Criterion)).ToArray()),
            Column.NewInt32Column("draw", results.Select(r => r.Draw).ToArray()),
            Column.NewStringColumn("experiment", results.Select(r => r.Experiment.ToString()).ToArray()),
            Column.NewStringColumn("label", results.Select(r => PruningPlan.Label(r.Experiment, r.Criterion, k, m)).ToArray()),
            Column.NewStringColumn("zeroed_filters", results.Select(r => string.Join(",", r.Zeroed)).ToArray()),
            Column.NewInt32Column("filters", results.Select(r => r.Filters).ToArray()),
            Column.NewFloat64Column("test_accuracy", results.Select(r => r.Accuracy).ToArray()),
            Column.NewFloat64Column("test_loss", results.Select(r => r.Loss).ToArray())));
    }

    /// <summary>Reads a results table written by <see cref="WriteResults"/>.</summary>
    public static IReadOnlyList<PruningResult> ReadResults(string path)
    {
        var columns = TableColumns.Read(path, ResultsTable);
        T[] Get<T>(string name) => TableColumns.Get<T>(columns, name, path);
        var run = Get<string>("run");
        var layer = Get<string>("layer");
        var criterion = Get<string>("criterion");
        var draw = Get<int>("draw");
        var experiment = Get<string>("experiment");
        var zeroed = Get<string>("zeroed_filters");
        var accuracy = Get<double>("test_accuracy");
        var loss = Get<double>("test_loss");
        // tables written before the column existed read as 0 (unknown)
        var filters = columns.ContainsKey("filters") ? Get<int>("filters") : new int[run.Length];
        return Enumerable.Range(0, run.Length).Select(i => new PruningResult(
            run[i], layer[i],
            PruningPlan.Parse(criterion[i]) ?? throw new ArtifactException($"{path}: unknown criterion '{criterion[i]}'"),
            draw[i],
            Enum.TryParse<Experiment>(experiment[i], out var e) ? e : throw new ArtifactException($"{path}: unknown experiment '{experiment[i]}'"),
            zeroed[i].Length == 0 ? [] : zeroed[i].Split(',').Select(int.Parse).ToArray(),
            loss[i], accuracy[i], filters[i])).ToList();
    }

    /// <summary>Writes prune-fraction curves, atomically.</summary>
    public static void WriteCurves(string path, IReadOnlyList<CurvePoint> points)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Tables.Write(path, CurvesTable, List(
            Column.NewStringColumn("run", points.Select(p => p.Run).ToArray()),
            Column.NewStringColumn("layer", points.Select(p => p.Layer).ToArray()),
            Column.NewStringColumn("criterion", points.Select(p => PruningPlan.Name(p.Criterion)).ToArray()),
            Column.NewStringColumn("order", points.Select(p => p.Order).ToArray()),
            Column.NewInt32Column("draw", points.Select(p => p.Draw).ToArray()),
            Column.NewInt32Column("removed", points.Select(p => p.Removed).ToArray()),
            Column.NewFloat64Column("test_accuracy", points.Select(p => p.Accuracy).ToArray()),
            Column.NewFloat64Column("test_loss", points.Select(p => p.Loss).ToArray())));
    }
}
