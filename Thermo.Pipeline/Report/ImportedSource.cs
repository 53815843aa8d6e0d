using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;

namespace Thermo.Pipeline.Report;

/// <summary>
/// Where a run made by <c>thermo import</c> came from, as its run.json says (<see cref="ImportedRun"/>):
/// the series' layout, the checkpoints' formats, how many there were and the times they span.
/// </summary>
/// <param name="Layout">The series' layout as run.json names it: Files, Lightning or HuggingFace.</param>
/// <param name="Formats">The checkpoints' formats (torch-zip, safetensors, …), each once, in the order first met.</param>
/// <param name="Checkpoints">How many checkpoints were imported (one snapshot each).</param>
/// <param name="TimeUnit">The unit of the snapshots' times: epoch or step.</param>
/// <param name="First">The first snapshot's time.</param>
/// <param name="Last">The last snapshot's time.</param>
public sealed record ImportedSource(string Layout, IReadOnlyList<string> Formats, int Checkpoints, TimeUnit TimeUnit, int First, int Last)
{
    /// <summary>The layout in words: what wrote the checkpoints.</summary>
    public string LayoutWords => Layout switch
    {
        "Files" => "checkpoint files of a plain training loop",
        "Lightning" => "PyTorch Lightning checkpoints",
        "HuggingFace" => "Hugging Face Trainer checkpoint directories",
        _ => Layout,
    };

    /// <summary>One sentence: "imported from 5 checkpoints (layout HuggingFace: Hugging Face Trainer checkpoint
    /// directories; format safetensors), steps 5..80".</summary>
    public string Describe() =>
        $"imported from {Checkpoints} checkpoint{(Checkpoints == 1 ? "" : "s")} (layout {Layout}: {LayoutWords}; format {string.Join(", ", Formats)}), {TimeUnits.Name(TimeUnit)}s {First}..{Last}";

    /// <summary>What an imported run's run.json says of its source; null for any other run.</summary>
    public static ImportedSource? Read(string run, JsonElement? manifest)
    {
        if (!ImportedRun.IsImported(run)) return null;
        var m = ImportedRun.ReadManifest(run);
        var formats = new List<string>();
        if (manifest is { } root && root.TryGetProperty("snapshots", out var snapshots) && snapshots.ValueKind == JsonValueKind.Array)
            foreach (var s in snapshots.EnumerateArray())
                if (s.TryGetProperty("format", out var f) && f.ValueKind == JsonValueKind.String && f.GetString() is { } format && !formats.Contains(format))
                    formats.Add(format);
        if (formats.Count == 0) formats.Add("unknown");
        return new ImportedSource(m.Layout, formats, m.Snapshots.Length, m.TimeUnit, m.Snapshots[0].Time, m.Snapshots[^1].Time);
    }
}

/// <summary>
/// An imported run's source-metrics.parquet as the report draws it: the time column and every numeric
/// column the source logged (at least one finite value), in file order.
/// </summary>
/// <param name="TimeUnit">The unit of <paramref name="Time"/> (the table's time_unit column; else the run's).</param>
/// <param name="Time">The logged times, in file order.</param>
/// <param name="Columns">Each logged quantity by its column name, one value per time (NaN where that row lacks it).</param>
public sealed record SourceMetrics(TimeUnit TimeUnit, int[] Time, IReadOnlyList<(string Name, double[] Values)> Columns)
{
    /// <summary>The columns that are not quantities: the time and its unit.</summary>
    static readonly string[] NotQuantities = ["time", "time_unit"];

    /// <summary>RUN/source-metrics.parquet, or null when the run has none.</summary>
    public static SourceMetrics? Read(string run, TimeUnit fallback)
    {
        var path = Path.Combine(run, RunLayout.SourceMetricsFile);
        if (!File.Exists(path)) return null;
        var columns = Tables.Read(path, ImportedRun.MetricsTable).ToList();
        var time = columns.FirstOrDefault(c => c.Name == "time") switch
        {
            Column.Int32Column t => t.values,
            Column.Int64Column t => t.values.Select(v => (int)v).ToArray(),
            null => throw new ArtifactException($"{path}: no column 'time'", path),
            _ => throw new ArtifactException($"{path}: column 'time' is not an integer column", path),
        };
        var unit = columns.FirstOrDefault(c => c.Name == "time_unit") is Column.StringColumn { values: { Length: > 0 } names } ? TimeUnits.Parse(names[0]) : fallback;
        var quantities = new List<(string, double[])>();
        foreach (var c in columns.Where(c => !NotQuantities.Contains(c.Name)))
        {
            double[]? values = c switch
            {
                Column.Float64Column f => f.values,
                Column.Float32Column f => f.values.Select(v => (double)v).ToArray(),
                Column.Int32Column i => i.values.Select(v => (double)v).ToArray(),
                Column.Int64Column i => i.values.Select(v => (double)v).ToArray(),
                _ => null,
            };
            if (values is not null && values.Any(double.IsFinite)) quantities.Add((c.Name, values));
        }
        return new SourceMetrics(unit, time, quantities);
    }
}
