using Thermo.Pipeline.Pruning;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;

namespace Thermo.Pipeline.Report;

/// <summary>A run's tables as the report reads them, each through its typed reader; each file optional except
/// the metrics of a trained run. A run made by <c>thermo import</c> has no metrics.parquet, gradient noise
/// or pruning results: its <see cref="Source"/> says where it came from and <see cref="SourceMetrics"/>
/// holds what the source logged, if anything.</summary>
public sealed class RunTables
{
    public string Run { get; }
    /// <summary>How tables and figures name the run: its directory name, or, beside other runs, the
    /// shortest suffix of its path that tells it apart (<see cref="RunIdentity.Names"/>).</summary>
    public string Name { get; private set; }
    public JsonElement? Manifest { get; }
    public MetricsRow[]? Metrics { get; }
    public GradientNoiseRow[]? GradientNoise { get; }
    public TemperatureColumns? Temperature { get; }
    public InstantaneousColumns? Instantaneous { get; }
    public MsdColumns? Msd { get; }
    public FitsColumns? Fits { get; }
    public IReadOnlyList<PruningResult>? Pruning { get; }
    public IReadOnlyList<CurvePoint>? Curves { get; }
    /// <summary>Where an imported run came from (its run.json); null for a run Thermo trained.</summary>
    public ImportedSource? Source { get; }
    /// <summary>What the source of an imported run logged (source-metrics.parquet), or null.</summary>
    public SourceMetrics? SourceMetrics { get; }
    /// <summary>The unit of the run's times: the analysis tables' time_unit, else an imported run's
    /// run.json; epoch for a run Thermo trained per epoch.</summary>
    public TimeUnit TimeUnit { get; }
    /// <summary>True when the run was made by <c>thermo import</c> from a checkpoint series.</summary>
    public bool Imported => Source is not null;
    /// <summary>"epoch" or "step": how axes and captions name <see cref="TimeUnit"/>.</summary>
    public string TimeName => TimeUnits.Name(TimeUnit);

    RunTables(string run)
    {
        Run = run;
        Name = Path.GetFileName(Path.GetFullPath(run).TrimEnd('/'));
        var manifest = RunLayout.Manifest(run);
        if (File.Exists(manifest))
        {
            try { Manifest = JsonDocument.Parse(File.ReadAllText(manifest)).RootElement.Clone(); }
            catch (JsonException e) { throw new ArtifactException($"{manifest}: not valid JSON ({e.Message})", manifest); }
        }
        Metrics = Read(RunLayout.Metrics(run), MetricsTable.Read);
        GradientNoise = Read(RunLayout.GradNoise(run), GradNoiseTable.Read);
        Temperature = Read(RunLayout.Temperature(run), AnalysisTables.ReadTemperature);
        Instantaneous = Read(RunLayout.AnalysisTable(run, RunLayout.InstantaneousFile), AnalysisTables.ReadInstantaneous);
        Msd = Read(RunLayout.AnalysisTable(run, RunLayout.MsdFile), AnalysisTables.ReadMsd);
        Fits = Read(RunLayout.AnalysisTable(run, RunLayout.FitsFile), AnalysisTables.ReadFits);
        Pruning = Read(RunLayout.PruningResults(run), PruningFiles.ReadResults);
        Curves = Read(RunLayout.PruningCurves(run), PruningFiles.ReadCurves);
        Source = ImportedSource.Read(run, Manifest);
        TimeUnit = Instantaneous?.TimeUnit ?? Source?.TimeUnit ?? TimeUnit.Epoch;
        if (Source is not null) SourceMetrics = SourceMetrics.Read(run, TimeUnit);
    }

    static T? Read<T>(string path, Func<string, T> read) where T : class =>
        File.Exists(path) ? read(path) : null;

    /// <summary>Loads several runs, each named apart from the others (a/seed-1, b/seed-1).</summary>
    public static List<RunTables> LoadAll(IReadOnlyList<string> runs)
    {
        var tables = runs.Select(Load).ToList();
        var names = RunIdentity.Names(runs.ToArray());
        for (int i = 0; i < tables.Count; i++) tables[i].Name = names[i];
        return tables;
    }

    /// <summary>Reads what the run has; a run without metrics.parquet is not a run, unless it was imported.</summary>
    public static RunTables Load(string run)
    {
        if (!Directory.Exists(run)) throw new ArtifactException($"{run}: run directory does not exist", run);
        var tables = new RunTables(run);
        if (tables.Metrics is null && !tables.Imported) throw new ArtifactException($"{run}: no {RunLayout.MetricsFile}; not a run directory (or the run wrote no epoch yet)", run);
        return tables;
    }

    /// <summary>The analysis window (from, to), if the run has been analysed.</summary>
    public (int From, int To)? Window =>
        Temperature is { WindowFrom.Length: > 0 } t ? (t.WindowFrom[0], t.WindowTo[0]) : null;

    /// <summary>Per-unit rows of a layer in the analysis (<see cref="AnalysisTables.UnitTemperatures"/>): unit,
    /// T, T_drift, T_osc, L1, sorted by unit; empty when the layer has no per-unit rows.</summary>
    public (int[] Units, double[] T, double[] Drift, double[] Oscillation, double[] L1) UnitTemperatures(string layer)
    {
        if (Temperature is null) throw new ArtifactException($"{Run}: not analysed", Run);
        if (!UnitLayers.Contains(layer)) return ([], [], [], [], []);
        var t = AnalysisTables.UnitTemperatures(Run, layer);
        return (t.Units, t.Temperature, t.Drift, t.Oscillation, t.L1Norm);
    }

    /// <summary>Layers with per-unit rows in the analysis, in file order (<see cref="AnalysisTables.UnitLayers"/>).</summary>
    public string[] UnitLayers => unitLayers ??= Temperature is null ? [] : AnalysisTables.UnitLayers(Run);
    string[]? unitLayers;
}
