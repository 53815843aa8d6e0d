using System.Text.Json;
using System.Text.Json.Serialization;

namespace Thermo.Trainer.Training;

/// <summary>Where a run stands.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<RunStatus>))]
public enum RunStatus { Running, Complete, Failed }

/// <summary>Identity and digest of the data a run trained on.</summary>
public sealed record DatasetInfo(string Name, string Source, string Digest, int TrainCount, int TestCount, int Channels, int Height, int Width, int Classes);

/// <summary>The native self-check a run passed: its cases, worst relative error against float64, tolerance and time.</summary>
public sealed record SelfCheckSummary(string[] Cases, double WorstRelativeError, double Tolerance, double Seconds);

/// <summary>
/// <c>run.json</c>: everything needed to reproduce, resume or analyse a run. Written atomically after
/// each epoch's files, so <see cref="LastCompleteEpoch"/> only ever names an epoch whose snapshot,
/// metrics and checkpoint are complete on disk.
/// </summary>
public sealed record RunManifest
{
    public const string FileName = Thermo.Analysis.Run.RunLayout.ManifestFile;
    public string SchemaVersion { get; init; } = Thermo.Analysis.Format.SnapshotSchema.Version;
    public required string RunId { get; init; }
    public required TrainConfig Config { get; init; }
    public required DatasetInfo Dataset { get; init; }
    public RunStatus Status { get; init; }
    /// <summary>Last epoch whose snapshot, metrics and checkpoint are complete; -1 before epoch 0 is written.</summary>
    public int LastCompleteEpoch { get; init; } = -1;
    /// <summary>Global optimiser step at the end of <see cref="LastCompleteEpoch"/>.</summary>
    public long LastStep { get; init; }
    /// <summary>Checkpoint directory of <see cref="LastCompleteEpoch"/>, relative to the run directory.</summary>
    public string? Checkpoint { get; init; }
    public string? Error { get; init; }
    public required Dictionary<string, string> Layers { get; init; }
    public long ParameterCount { get; init; }
    public required Dictionary<string, string> Packages { get; init; }
    public string? GitCommit { get; init; }
    /// <summary>The CPU, native kernels, versions and threads this run's bytes depend on (of the process that last trained it).</summary>
    public Thermo.Trainer.Native.NativeStack? Native { get; init; }
    /// <summary>The native self-check this run passed before training.</summary>
    public SelfCheckSummary? SelfCheck { get; init; }
    public string Machine { get; init; } = $"{Environment.MachineName}, {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";
    public DateTimeOffset CreatedUtc { get; init; }
    public DateTimeOffset UpdatedUtc { get; init; }

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string PathIn(string runDirectory) => Thermo.Analysis.Run.RunLayout.Manifest(runDirectory);

    /// <summary>
    /// The tensors of one of <see cref="Layers"/>, in registration order, with their shapes, from its
    /// description ("weight [12×1×5×5]; bias [12]").
    /// </summary>
    public static IReadOnlyList<(string Tensor, int[] Shape)> TensorsOf(string layerDescription) =>
        layerDescription.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(part =>
        {
            int open = part.IndexOf(" [", StringComparison.Ordinal);
            if (open < 0 || !part.EndsWith(']')) return (part, Array.Empty<int>());
            var dims = part[(open + 2)..^1];
            return (part[..open], dims.Length == 0 ? [] : dims.Split('×').Select(d => int.Parse(d, System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        }).ToList();

    /// <summary>Writes the manifest atomically.</summary>
    public void Save(string runDirectory) =>
        Thermo.Analysis.AtomicFiles.WriteAllText(PathIn(runDirectory), JsonSerializer.Serialize(this with { UpdatedUtc = DateTimeOffset.UtcNow }, Json));

    /// <summary>Reads a manifest, or null when it is absent or unreadable (for polling a run in progress).</summary>
    public static RunManifest? TryLoadQuietly(string runDirectory)
    {
        try { return TryLoad(runDirectory); }
        catch (Exception e) when (e is ThermoException or IOException) { return null; }
    }

    /// <summary>Reads a manifest, or null when the directory has none.</summary>
    public static RunManifest? TryLoad(string runDirectory)
    {
        var path = PathIn(runDirectory);
        if (!File.Exists(path)) return null;
        try
        {
            var manifest = JsonSerializer.Deserialize<RunManifest>(File.ReadAllText(path), Json)
                           ?? throw new ThermoException($"{path}: empty manifest");
            return manifest with { Config = manifest.Config.AsRecordedByRun(manifest.Dataset.Digest) };
        }
        catch (JsonException e)
        {
            throw new ThermoException($"{path}: not a valid run manifest ({e.Message})");
        }
    }
}
