using System.Collections.Concurrent;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Pipeline.Report;

namespace Thermo.Pipeline.Watch;

/// <summary>
/// The live view of one run directory for <c>thermo watch</c>, updated incrementally: each call of
/// <see cref="Update"/> reads only the snapshots run.json declares complete that it has not seen yet,
/// keeping the previous snapshot's values (float32, as stored) to compute each new epoch's
/// instantaneous temperatures T(e) = mean over a group's weights of ½ (w(e) − w(e−1))² / Δt², per layer
/// and per unit (a slice along dimension 0), with the analysis engine's own kernel, so the values are
/// <c>thermo analyze</c>'s instantaneous.parquet ones. A snapshot being written (a temporary name, or an
/// epoch beyond run.json's last complete one) is pending, not an error. A fault (no such directory, a
/// damaged file, a snapshot linked to a file outside the run) makes the run's status "error" with one
/// line; the next update tries again. Window quantities (<see cref="Window"/>) come from the analysis
/// engine on demand, cached. Thread-safe: updates and readers take one lock per run.
/// </summary>
public sealed class RunWatch
{
    /// <summary>Values per chunk read from a snapshot file (the engine's chunk length).</summary>
    const int ChunkLength = 1 << 14;

    /// <summary>The window results kept per run before the cache starts over.</summary>
    const int WindowCacheSize = 64;

    readonly object gate = new();
    readonly Action<string> log;
    readonly ConcurrentDictionary<(int, int, string), Lazy<WindowResult>> windows = new();

    // The weight tensors of the run, from its first snapshot's directory.
    (string Layer, string Tensor, int[] Shape)[]? directory;
    Slot[] slots = [];
    string[] layers = [];
    float[] latest = [];
    float[] work = [];
    readonly float[] chunk = new float[ChunkLength];

    int lastEpoch = -1;
    bool complete;
    string? error;
    (DateTime, long) manifestStamp;
    (DateTime, long) metricsStamp;
    readonly List<int> epochs = [];
    readonly List<double[]> layerT = [];   // per epoch: T of each layer
    readonly List<double[][]> unitT = [];  // per epoch: per layer, T of each unit
    MetricsRow[] metrics = [];
    /// <summary>An imported run's source-metrics.parquet (what its source logged, by column), null without one.</summary>
    SourceMetrics? sourceMetrics;
    (DateTime, long) sourceMetricsStamp;
    /// <summary>Whether the run was imported from a checkpoint series, and the unit of its time (epoch or optimiser step).</summary>
    bool imported;
    /// <summary>Where an imported run came from, as run.json says (null for a trained run).</summary>
    ImportedSource? source;
    TimeUnit timeUnit = TimeUnit.Epoch;

    /// <summary>A weight tensor's place in a snapshot's flat values: the layer's index, its start, units and values per unit.</summary>
    readonly record struct Slot(int Layer, int Start, int Units, int UnitSize);

    /// <summary>A run directory to watch, named <paramref name="name"/> in the API; faults go to <paramref name="log"/> (one line each, when they change).</summary>
    public RunWatch(string directory, string name, Action<string> log)
    {
        Directory = directory;
        Name = name;
        this.log = log;
    }

    /// <summary>The run directory.</summary>
    public string Directory { get; }

    /// <summary>The run's name in the API (its path below the watched argument, or its directory name).</summary>
    public string Name { get; }

    /// <summary>The last epoch whose temperatures are known (−1: none yet).</summary>
    public int LastEpoch { get { lock (gate) return lastEpoch; } }

    /// <summary>The fault that stopped the last update, or null.</summary>
    public string? Error { get { lock (gate) return error; } }

    /// <summary>True when run.json says the run is complete and every epoch it declares has been read.</summary>
    public bool Complete { get { lock (gate) return complete; } }

    /// <summary>The files the watcher reads in the run (run.json, metrics.parquet, snapshots/), for file-system notifications.</summary>
    public string SnapshotsDirectory => RunLayout.Snapshots(Directory);

    /// <summary>
    /// Reads what is new in the run: the snapshots run.json newly declares complete, the metrics, the
    /// status. True when the last epoch changed. Never throws for a fault of the run: the run's status
    /// becomes "error" with the message instead.
    /// </summary>
    public bool Update()
    {
        lock (gate)
        {
            int before = lastEpoch;
            try
            {
                if (!System.IO.Directory.Exists(Directory)) throw new ArtifactException($"{Directory}: no such run directory", Directory);
                var manifest = RunLayout.Manifest(Directory);
                RefuseOutsideLink(manifest);
                var info = new FileInfo(manifest);
                if (!info.Exists) throw new ArtifactException($"{Directory}: no {RunLayout.ManifestFile}; not a Thermo run directory", Directory);
                var stamp = (info.LastWriteTimeUtc, info.Length);
                if (stamp != manifestStamp || error is not null)
                {
                    RefuseOutsideLink(SnapshotsDirectory);
                    imported = Snapshots.IsImported(Directory);
                    // The status before the listing: a training writes its last snapshot before the
                    // manifest that calls the run complete, so a run read as complete has all its
                    // files listed. An imported checkpoint series is written whole: complete by construction.
                    using var document = JsonDocument.Parse(File.ReadAllText(manifest));
                    var nowComplete = imported || IsComplete(document.RootElement);
                    source = ImportedSource.Read(Directory, document.RootElement);
                    var (unit, files) = Snapshots.SeriesFiles(Directory);
                    timeUnit = unit;
                    foreach (var file in files)
                        if (file.Time > lastEpoch) Read(file.Time, file.Path);
                    complete = nowComplete;
                    manifestStamp = stamp;
                }
                RefreshMetrics();
                if (error is not null) log($"{Name}: serving again");
                error = null;
            }
            catch (Exception e) when (e is ArtifactException or SettingException or IOException or UnauthorizedAccessException or JsonException or InvalidOperationException)
            {
                var message = e.Message.ReplaceLineEndings(" ");
                if (message != error) log($"{Name}: {message}");
                error = message;
            }
            return lastEpoch != before;
        }
    }

    /// <summary>
    /// Refuses a file or directory of the run that is a symbolic link resolving outside the run
    /// directory: the watcher reads only the run's own files.
    /// </summary>
    void RefuseOutsideLink(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists && !System.IO.Directory.Exists(path)) return;
        FileSystemInfo entry = info.Exists ? info : new DirectoryInfo(path);
        if (entry.LinkTarget is null) return;
        var target = entry.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? "";
        var root = Path.GetFullPath(Directory).TrimEnd('/');
        var real = new DirectoryInfo(root).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? root;
        bool inside(string dir) => target.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        if (!inside(root) && !inside(real))
            throw new ArtifactException($"{path}: is a symbolic link to {target}, outside the run directory; not read", path);
    }

    static bool IsComplete(JsonElement manifest) =>
        manifest.TryGetProperty("status", out var status) && status.ValueKind == JsonValueKind.String && status.GetString() == "Complete";

    void RefreshMetrics()
    {
        if (imported)
        {
            // Refused before it is read, and read again only when it changes.
            var source = new FileInfo(Path.Combine(Directory, RunLayout.SourceMetricsFile));
            RefuseOutsideLink(source.FullName);
            var sourceStamp = source.Exists ? (source.LastWriteTimeUtc, source.Length) : default;
            if (sourceStamp != sourceMetricsStamp)
            {
                sourceMetrics = source.Exists ? SourceMetrics.Read(Directory, timeUnit) : null;
                metrics = Snapshots.ImportedMetrics(Directory);
                sourceMetricsStamp = sourceStamp;
            }
            return;
        }
        var path = RunLayout.Metrics(Directory);
        RefuseOutsideLink(path);
        var info = new FileInfo(path);
        if (!info.Exists) { metrics = []; return; }
        var stamp = (info.LastWriteTimeUtc, info.Length);
        if (stamp == metricsStamp) return;
        metrics = MetricsTable.Read(path);
        metricsStamp = stamp;
    }

    /// <summary>Reads one new snapshot: the first sets the layout and the previous values; each later one adds an epoch of temperatures.</summary>
    void Read(int epoch, string path)
    {
        RefuseOutsideLink(path);
        bool first = directory is null;
        double[][] sums = [];
        double interval = first ? 1 : epoch - lastEpoch;
        int offset = 0;
        int cursor = 0;
        Snapshots.StreamValues(path, (_, _, tensors) =>
        {
            var seen = tensors.Select(t => (t.Layer, t.Tensor, t.Shape)).ToArray();
            if (first) Layout(seen);
            else if (!SameDirectory(seen))
                throw new ArtifactException($"{path}: its tensors differ from those of the run's earlier snapshots", path);
            if (!first)
            {
                Array.Copy(latest, work, latest.Length);
                sums = layers.Select((_, l) => new double[slots.Where(s => s.Layer == l).Sum(s => s.Units)]).ToArray();
            }
        }, () => chunk, (values, count) =>
        {
            int stop = offset + count;
            while (cursor < slots.Length && slots[cursor].Start + slots[cursor].Units * slots[cursor].UnitSize <= offset) cursor++;
            for (int s = cursor; s < slots.Length && slots[s].Start < stop; s++)
            {
                var slot = slots[s];
                int end = slot.Start + slot.Units * slot.UnitSize;
                int from = Math.Max(slot.Start, offset), until = Math.Min(end, stop);
                if (first)
                {
                    Array.Copy(values, from - offset, latest, from, until - from);
                    continue;
                }
                // Unit by unit inside the slot, as the engine's segments are.
                for (int at = from; at < until;)
                {
                    int unit = (at - slot.Start) / slot.UnitSize;
                    int unitEnd = Math.Min(until, slot.Start + (unit + 1) * slot.UnitSize);
                    double sum = Snapshots.StepSquares(new ReadOnlySpan<float>(values, at - offset, unitEnd - at), new Span<float>(work, at, unitEnd - at));
                    sums[slot.Layer][unit] += sum / (interval * interval);
                    at = unitEnd;
                }
            }
            offset = stop;
        });
        if (first)
        {
            lastEpoch = epoch;
            return;
        }
        var physics = Physics.Default;
        var layerValues = new double[layers.Length];
        var unitValues = new double[layers.Length][];
        for (int l = 0; l < layers.Length; l++)
        {
            int unitSize = slots.First(s => s.Layer == l).UnitSize;
            unitValues[l] = sums[l].Select(s => Kinematics.Temperature(physics, s, unitSize)).ToArray();
            double total = 0;
            foreach (var s in sums[l]) total += s;
            layerValues[l] = Kinematics.Temperature(physics, total, (double)unitSize * sums[l].Length);
        }
        (latest, work) = (work, latest);
        epochs.Add(epoch);
        layerT.Add(layerValues);
        unitT.Add(unitValues);
        lastEpoch = epoch;
    }

    void Layout((string Layer, string Tensor, int[] Shape)[] tensors)
    {
        directory = tensors;
        var offsets = new int[tensors.Length + 1];
        for (int i = 0; i < tensors.Length; i++) offsets[i + 1] = offsets[i] + tensors[i].Shape.Aggregate(1, (a, b) => a * b);
        layers = tensors.Where(t => t.Tensor == "weight").Select(t => t.Layer).Distinct().ToArray();
        slots = tensors.Select((t, i) => (t, i)).Where(x => x.t.Tensor == "weight").Select(x =>
        {
            int units = x.t.Shape.Length == 0 ? 1 : x.t.Shape[0];
            int size = offsets[x.i + 1] - offsets[x.i];
            return new Slot(Array.IndexOf(layers, x.t.Layer), offsets[x.i], units, size / Math.Max(1, units));
        }).OrderBy(s => s.Start).ToArray();
        latest = new float[offsets[^1]];
        work = new float[offsets[^1]];
    }

    bool SameDirectory((string Layer, string Tensor, int[] Shape)[] tensors) =>
        directory!.Length == tensors.Length
        && directory.Zip(tensors).All(p => p.First.Layer == p.Second.Layer && p.First.Tensor == p.Second.Tensor && p.First.Shape.SequenceEqual(p.Second.Shape));

    /// <summary>What <c>/api/runs</c> and <c>/api/runs/{id}</c> both say of the run: id, name, status, last epoch, completeness.</summary>
    void WriteState(Utf8JsonWriter json, string id)
    {
        json.WriteString("id", id);
        json.WriteString("name", Name);
        json.WriteString("status", error is null ? "ok" : "error");
        json.WriteString("message", error);
        json.WriteNumber("last_epoch", lastEpoch);
        json.WriteBoolean("complete", complete && error is null);
    }

    /// <summary>The run's entry of <c>/api/runs</c>.</summary>
    public void WriteSummary(Utf8JsonWriter json, string id)
    {
        lock (gate)
        {
            json.WriteStartObject();
            WriteState(json, id);
            json.WriteEndObject();
        }
    }

    /// <summary>
    /// <c>/api/runs/{id}</c>: layers, units, metrics and temperatures per epoch; with
    /// <paramref name="since"/>, every array holds only the epochs after it. Non-finite numbers are null.
    /// </summary>
    public void WriteSeries(Utf8JsonWriter json, string id, int since)
    {
        lock (gate)
        {
            json.WriteStartObject();
            WriteState(json, id);
            json.WriteString("time_unit", TimeUnits.Name(timeUnit));
            json.WriteStartArray("layers");
            foreach (var l in layers) json.WriteStringValue(l);
            json.WriteEndArray();
            json.WriteStartObject("units");
            for (int l = 0; l < layers.Length; l++) json.WriteNumber(layers[l], slots.Where(s => s.Layer == l).Max(s => s.Units));
            json.WriteEndObject();

            var rows = metrics.Where(r => r.Epoch > since && r.Epoch <= lastEpoch).OrderBy(r => r.Epoch).ToArray();
            json.WriteStartObject("metrics");
            json.WriteStartArray("epoch");
            foreach (var r in rows) json.WriteNumberValue(r.Epoch);
            json.WriteEndArray();
            WriteNumbers(json, "train_loss", rows.Select(r => r.TrainLoss));
            WriteNumbers(json, "test_loss", rows.Select(r => r.TestLoss));
            WriteNumbers(json, "train_accuracy", rows.Select(r => r.TrainAccuracy));
            WriteNumbers(json, "test_accuracy", rows.Select(r => r.TestAccuracy));
            json.WriteEndObject();
            if (imported) WriteSourceMetrics(json, since);

            var picked = Enumerable.Range(0, epochs.Count).Where(i => epochs[i] > since).ToArray();
            json.WriteStartObject("layer_temperature");
            for (int l = 0; l < layers.Length; l++)
            {
                json.WriteStartObject(layers[l]);
                WriteEpochs(json, picked);
                WriteNumbers(json, "t", picked.Select(i => layerT[i][l]));
                json.WriteEndObject();
            }
            json.WriteEndObject();
            json.WriteStartObject("unit_temperature");
            for (int l = 0; l < layers.Length; l++)
            {
                json.WriteStartObject(layers[l]);
                WriteEpochs(json, picked);
                json.WriteStartArray("t");
                foreach (var i in picked)
                {
                    json.WriteStartArray();
                    foreach (var t in unitT[i][l]) WriteNumber(json, t);
                    json.WriteEndArray();
                }
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
    }

    /// <summary>
    /// An imported run's "source_metrics" (each column its source logged, against "time") and
    /// "training_note", as the report's page has them. An imported run does not grow: the rows after
    /// <paramref name="since"/> go with the request that brings its snapshots, none with later polls.
    /// </summary>
    void WriteSourceMetrics(Utf8JsonWriter json, int since)
    {
        int upTo = since < lastEpoch ? int.MaxValue : since;
        var (metrics, note) = PagePayload.SourceMetricsPayload(sourceMetrics, time => time > since && time <= upTo);
        if (source is not null)
        {
            json.WritePropertyName("source");
            PagePayload.SourcePayload(source).WriteTo(json);
        }
        json.WritePropertyName("source_metrics");
        if (metrics is null) json.WriteNullValue();
        else metrics.WriteTo(json);
        json.WriteString("training_note", note);
    }

    void WriteEpochs(Utf8JsonWriter json, int[] picked)
    {
        json.WriteStartArray("epoch");
        foreach (var i in picked) json.WriteNumberValue(epochs[i]);
        json.WriteEndArray();
    }

    static void WriteNumbers(Utf8JsonWriter json, string name, IEnumerable<double> values)
    {
        json.WriteStartArray(name);
        foreach (var v in values) WriteNumber(json, v);
        json.WriteEndArray();
    }

    /// <summary>A number, or null where it is NaN or infinite (JSON has no such numbers).</summary>
    public static void WriteNumber(Utf8JsonWriter json, double value)
    {
        if (double.IsFinite(value)) json.WriteNumberValue(value);
        else json.WriteNullValue();
    }

    /// <summary>
    /// The window [<paramref name="from"/>, <paramref name="to"/>] of the run: per layer and unit the
    /// equilibrium, drift and oscillation temperatures and the units' ranks, and the MSD of
    /// <paramref name="layer"/> (null: the first layer) against lag with its fitted α — the analysis
    /// engine over the window's snapshot files, computed once per window and layer. A window outside the
    /// epochs read so far, or an unknown layer, raises <see cref="SettingException"/>.
    /// </summary>
    public WindowResult Window(int from, int to, string? layer)
    {
        string[] known;
        int last;
        lock (gate) { known = layers; last = lastEpoch; }
        if (known.Length == 0) throw new SettingException(AnalysisSetting.Window, Name, "has no temperatures yet");
        layer ??= known[0];
        if (!known.Contains(layer))
            throw new SettingException(AnalysisSetting.MsdLayers, Name, $"unknown layer '{layer}' (layers with weights: {string.Join(", ", known)})");
        if (from < 0 || to <= from || to > last)
            throw new SettingException(AnalysisSetting.Window, Name, $"window {from}:{to} is not a:b with 0 ≤ a < b ≤ {last}, the last epoch read");
        if (windows.Count >= WindowCacheSize) windows.Clear();
        var entry = windows.GetOrAdd((from, to, layer), key => new Lazy<WindowResult>(() => ComputeWindow(key.Item1, key.Item2, key.Item3)));
        try { return entry.Value; }
        catch { windows.TryRemove((from, to, layer), out _); throw; }
    }

    WindowResult ComputeWindow(int from, int to, string layer)
    {
        var options = Analyzer.Options(WindowSpec.NewBetween(from, to), Grouping.Unit, null!, false, Physics.Default, [layer], null);
        var result = Analyzer.Run(Directory, options);
        var layerNames = result.Layers.Select(r => r.Key.Layer).ToArray();
        var layerTemps = result.Layers.ToDictionary(r => r.Key.Layer, r => r.Temperature);
        var units = layerNames.ToDictionary(l => l, l => result.Groups.Where(g => g.Key.Layer == l).OrderBy(g => g.Key.Unit).ToArray());
        var curves = result.Diffusion.Where(d => d.Key.Layer == layer).OrderBy(d => d.Key.Unit).ToArray();
        int[] lags = curves.Length > 0 ? curves[0].Curves.Lags : [];
        var msd = lags.Select((_, i) => curves.Average(c => c.Curves.Msd[i])).ToArray();
        int n = to - from;
        var (alpha, r2) = lags.Length >= 2 ? Analyzer.FitAlpha(lags, msd, 1, Math.Max(2, n / 2)) : (double.NaN, double.NaN);
        return new WindowResult(from, to, layerNames, layerTemps, units, layer, lags, msd, alpha, r2, curves.Select(c => c.Alpha.Slope).ToArray());
    }
}

/// <summary>What <see cref="RunWatch.Window"/> computes for one window and MSD layer.</summary>
public sealed record WindowResult(
    int From, int To, string[] Layers, IReadOnlyDictionary<string, GroupTemperature> LayerTemperatures,
    IReadOnlyDictionary<string, GroupResult[]> Units, string MsdLayer, int[] Lags, double[] Msd, double Alpha, double RSquared, double[] UnitAlpha)
{
    /// <summary><c>/api/runs/{id}/window</c>'s document. Non-finite numbers are null.</summary>
    public void Write(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteNumber("from", From);
        json.WriteNumber("to", To);
        json.WriteStartObject("layers");
        foreach (var l in Layers)
        {
            var t = LayerTemperatures[l];
            json.WriteStartObject(l);
            json.WritePropertyName("t"); RunWatch.WriteNumber(json, t.Temperature);
            json.WritePropertyName("drift"); RunWatch.WriteNumber(json, t.Drift);
            json.WritePropertyName("osc"); RunWatch.WriteNumber(json, t.Oscillation);
            json.WriteEndObject();
        }
        json.WriteEndObject();
        json.WriteStartObject("units");
        foreach (var l in Layers)
        {
            var groups = Units[l];
            json.WriteStartObject(l);
            Array("t", groups.Select(g => g.Temperature.Temperature));
            Array("drift", groups.Select(g => g.Temperature.Drift));
            Array("osc", groups.Select(g => g.Temperature.Oscillation));
            Array("rank", groups.Select(g => (double)g.Rank));
            json.WriteEndObject();
        }
        json.WriteEndObject();
        json.WriteStartObject("msd");
        json.WriteString("layer", MsdLayer);
        Array("lag", Lags.Select(l => (double)l));
        Array("msd", Msd);
        json.WritePropertyName("alpha"); RunWatch.WriteNumber(json, Alpha);
        json.WritePropertyName("r2"); RunWatch.WriteNumber(json, RSquared);
        Array("unit_alpha", UnitAlpha);
        json.WriteEndObject();
        json.WriteEndObject();

        void Array(string name, IEnumerable<double> values)
        {
            json.WriteStartArray(name);
            foreach (var v in values) RunWatch.WriteNumber(json, v);
            json.WriteEndArray();
        }
    }
}
