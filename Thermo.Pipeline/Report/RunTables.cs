using Thermo.Pipeline.Pruning;
using System.Text.Json;
using Thermo.Analysis;

namespace Thermo.Pipeline.Report;

/// <summary>A run's tables as the report reads them: columns by name, each file optional except the metrics.</summary>
public sealed class RunTables
{
    public string Run { get; }
    public string Name { get; }
    public JsonElement? Manifest { get; }
    public IReadOnlyDictionary<string, Column>? Metrics { get; }
    public IReadOnlyDictionary<string, Column>? GradientNoise { get; }
    public IReadOnlyDictionary<string, Column>? Temperature { get; }
    public IReadOnlyDictionary<string, Column>? Msd { get; }
    public IReadOnlyDictionary<string, Column>? Fits { get; }
    public IReadOnlyList<PruningResult>? Pruning { get; }
    public IReadOnlyDictionary<string, Column>? Curves { get; }

    RunTables(string run)
    {
        Run = run;
        Name = Path.GetFileName(Path.GetFullPath(run).TrimEnd('/'));
        var manifest = Path.Combine(run, "run.json");
        if (File.Exists(manifest))
        {
            try { Manifest = JsonDocument.Parse(File.ReadAllText(manifest)).RootElement.Clone(); }
            catch (JsonException e) { throw new ArtifactException($"{manifest}: not valid JSON ({e.Message})"); }
        }
        Metrics = Read(Path.Combine(run, "metrics.parquet"), "metrics");
        GradientNoise = Read(Path.Combine(run, "gradnoise.parquet"), "gradnoise");
        var analysis = Path.Combine(run, AnalysisOutput.Directory);
        Temperature = Read(Path.Combine(analysis, "temperature.parquet"), "temperature");
        Msd = Read(Path.Combine(analysis, "msd.parquet"), "msd");
        Fits = Read(Path.Combine(analysis, "fits.parquet"), "fits");
        var results = Path.Combine(run, PruningFiles.Directory, PruningFiles.ResultsFile);
        Pruning = File.Exists(results) ? PruningFiles.ReadResults(results) : null;
        Curves = Read(Path.Combine(run, PruningFiles.Directory, PruningFiles.CurvesFile), PruningFiles.CurvesTable);
    }

    static IReadOnlyDictionary<string, Column>? Read(string path, string table) =>
        File.Exists(path) ? TableColumns.Read(path, table) : null;

    /// <summary>Reads what the run has; a run without metrics.parquet is not a run.</summary>
    public static RunTables Load(string run)
    {
        if (!Directory.Exists(run)) throw new ArtifactException($"{run}: run directory does not exist");
        var tables = new RunTables(run);
        if (tables.Metrics is null) throw new ArtifactException($"{run}: no metrics.parquet; not a run directory (or the run wrote no epoch yet)");
        return tables;
    }

    /// <summary>The analysis window (from, to), if the run has been analysed.</summary>
    public (int From, int To)? Window =>
        Temperature is { } t && TableColumns.Get<int>(t, "window_from", "temperature.parquet") is { Length: > 0 } from
            ? (from[0], TableColumns.Get<int>(t, "window_to", "temperature.parquet")[0]) : null;

    /// <summary>Per-unit rows of a layer in temperature.parquet: unit, T, T_drift, T_osc, L1, sorted by unit.</summary>
    public (int[] Units, double[] T, double[] Drift, double[] Oscillation, double[] L1) UnitTemperatures(string layer)
    {
        var t = Temperature ?? throw new ArtifactException($"{Run}: not analysed");
        const string what = "temperature.parquet";
        var layers = TableColumns.Get<string>(t, "layer", what);
        var grouping = TableColumns.Get<string>(t, "grouping", what);
        var rows = Enumerable.Range(0, layers.Length).Where(i => layers[i] == layer && grouping[i] == "unit")
            .OrderBy(i => TableColumns.Get<int>(t, "unit", what)[i]).ToArray();
        double[] Pick(string column) { var v = TableColumns.Get<double>(t, column, what); return rows.Select(i => v[i]).ToArray(); }
        return (rows.Select(i => TableColumns.Get<int>(t, "unit", what)[i]).ToArray(), Pick("temperature"), Pick("drift_temperature"), Pick("oscillation_temperature"), Pick("l1_norm"));
    }

    /// <summary>Layers with per-unit rows in the analysis, in file order.</summary>
    public string[] UnitLayers =>
        Temperature is { } t
            ? TableColumns.Get<string>(t, "layer", "temperature.parquet").Where((l, i) => TableColumns.Get<string>(t, "grouping", "temperature.parquet")[i] == "unit").Distinct().ToArray()
            : [];
}
