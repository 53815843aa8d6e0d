using System.Diagnostics;
using System.Globalization;
using System.Text;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Trainer.Models;
using Thermo.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

// Thermo's benchmarks. Each figure is a median over repeats and, where a target is a ratio, the
// baseline is measured in the same run. Results go to docs/BENCHMARKS.md (date and machine included).
// Usage: Thermo.Bench [--quick] [--only memory,write,training,analysis,pruning,models,peer,ledger,checkpoints,watch] [--out docs/BENCHMARKS.md]
// Thermo.Bench native-probe …: the bisection harness of docs/NATIVE.md (NativeProbe.cs).
// (`--only` runs some sections and, unless --out is given, writes artifacts/BENCHMARKS.partial.md,
// leaving the documented figures alone. THERMO_PROBE_DEBUG=1 keeps the synthetic runs under
// artifacts/bench and prints the analysis memory probe's breakdown on stderr.)
// (`--quick` shrinks every size so the whole run takes about a minute; its figures are not the documented ones.)

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
// The native stack every Thermo process uses (docs/NATIVE.md), before the first tensor.
Thermo.Trainer.Native.NativeSetup.Apply();
if (args.Length == 5 && args[0] == AnalysisBench.ProbeVerb)
{
    AnalysisBench.Probe(args[1], args[2], args[3], args[4] == "msd");
    return 0;
}
if (args.Length > 0 && args[0] == NativeProbe.Verb)
    return NativeProbe.Run(args, Path.Combine(FindRoot(), "artifacts"));
bool quick = args.Contains("--quick");
var outIndex = Array.IndexOf(args, "--out");
var repoRoot = FindRoot();
var onlyIndex = Array.IndexOf(args, "--only");
var only = onlyIndex >= 0 ? args[onlyIndex + 1].Split(',') : null;
bool Section(string name) => only is null || only.Contains(name);
var artifacts = Path.Combine(repoRoot, "artifacts");
var output = outIndex >= 0 ? args[outIndex + 1] : only is null ? Path.Combine(repoRoot, "docs", "BENCHMARKS.md") : Path.Combine(artifacts, "BENCHMARKS.partial.md");
var scratch = Path.Combine(artifacts, "bench");
if (Directory.Exists(scratch)) Directory.Delete(scratch, true);
Directory.CreateDirectory(scratch);
var rows = new List<(string Name, string Value, string Target, string Verdict)>();
void Report(string name, string value, string target, bool? met)
{
    rows.Add((name, value, target, met switch { true => "met", false => "**not met**", null => "" }));
    Console.WriteLine($"{name}: {value} (target {target}) {(met is null ? "" : met.Value ? "met" : "NOT MET")}");
}
static double Median(IEnumerable<double> values)
{
    var sorted = values.OrderBy(v => v).ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

// 1. Memory of a long small run (first, so nothing else this process did inflates it): resident set after epoch 10 against after epoch 100.
if (Section("memory"))
{
    int epochs = quick ? 30 : 100;
    var config = new TrainConfig { Dataset = "mnist-10k", Epochs = epochs, TrainLimit = 256, TestLimit = 256, BatchSize = 64, Seed = 1 };
    var progress = new EpochClock { SampleMemory = true };
    using (var run = TrainingRun.Start(config, Path.Combine(scratch, "long"), artifacts, progress)) run.Run();
    double at10 = progress.ResidentBytes[10], atMiddle = progress.ResidentBytes[epochs / 2], atEnd = progress.ResidentBytes[epochs];
    Report($"process memory after epoch {epochs} ÷ after epoch 10 (256 images, batch 64)",
        $"{atEnd / 1e6:F0} MB / {at10 / 1e6:F0} MB = {atEnd / at10:F3} (epoch {epochs / 2}: {atMiddle / 1e6:F0} MB)", "flat (≤ 1.05)", atEnd / at10 <= 1.05);
}

// 2. Snapshot write throughput of a synthetic 10M-parameter model, against a plain write of the same float32 bytes.
if (Section("write"))
{
    int units = 1000, perUnit = 1000, layers = quick ? 2 : 10, repeats = quick ? 3 : 5;
    var random = new Random(1);
    var tensors = Enumerable.Range(0, layers).SelectMany(l => new[]
    {
        new TensorSnapshot($"layer{l}", "weight", [units, perUnit], Enumerable.Range(0, units * perUnit).Select(_ => (float)random.NextDouble()).ToArray()),
        new TensorSnapshot($"layer{l}", "bias", [units], new float[units]),
    }).ToArray();
    var snapshot = new Snapshot(7, 1234, tensors);
    long values = tensors.Sum(t => (long)t.Values.Length);
    double megabytes = values * 4 / 1e6;
    var raw = new List<double>();
    var rawOfArrowSize = new List<double>();
    var timings = new Dictionary<SnapshotFileFormat, List<double>> { [SnapshotFileFormat.Parquet] = [], [SnapshotFileFormat.Arrow] = [] };
    var sizes = new Dictionary<SnapshotFileFormat, long>();
    for (int r = 0; r < repeats; r++)
    {
        raw.Add(PlainWrite(Path.Combine(scratch, "raw.bin"), values * 4));
        foreach (var format in timings.Keys)
        {
            var path = Path.Combine(scratch, SnapshotSchema.fileName(format, r));
            var sw = Stopwatch.StartNew();
            SnapshotWriter.write(format, path, snapshot);
            timings[format].Add(sw.Elapsed.TotalSeconds);
            sizes[format] = new FileInfo(path).Length;
            File.Delete(path);
        }
        // The Arrow file holds every column in full; a plain write of that many bytes bounds its speed.
        rawOfArrowSize.Add(PlainWrite(Path.Combine(scratch, "raw.bin"), sizes[SnapshotFileFormat.Arrow]));
    }
    double rawSpeed = megabytes / Median(raw);
    Report($"baseline: plain write of {values / 1e6:F0}M float32 values", $"{rawSpeed:F0} MB/s", "—", null);
    foreach (var (format, target) in new[] { (SnapshotFileFormat.Parquet, 150.0), (SnapshotFileFormat.Arrow, 500.0) })
    {
        double speed = megabytes / Median(timings[format]);
        Report($"{format} snapshot write, {values / 1e6:F0}M parameters", $"{speed:F0} MB/s of float32 values ({speed / rawSpeed:P0} of plain write)", $"≥ {target:F0} MB/s", speed >= target);
        Report($"{format} file size ÷ raw float32 size", $"{(double)sizes[format] / (values * 4):F2}", "—", null);
    }
    Report($"baseline: plain write of the Arrow file's {sizes[SnapshotFileFormat.Arrow] / 1e6:F0} MB",
        $"{Median(rawOfArrowSize):F2} s, i.e. at most {megabytes / Median(rawOfArrowSize):F0} MB/s of values; Arrow write ÷ this = {Median(timings[SnapshotFileFormat.Arrow]) / Median(rawOfArrowSize):F2}", "—", null);
}

// 3 and 4. The paper CNN on mnist: snapshot cost per epoch, and full-loop throughput against a bare loop.
if (Section("training"))
{
    int epochs = quick ? 2 : 6;
    var config = new TrainConfig { Epochs = epochs, Seed = 1, Dataset = "mnist-10k" };
    var progress = new EpochClock();
    // The bare loop runs before and after the full run, so drift in the machine's speed hits both alike.
    var bareSpeeds = BareLoopImagesPerSecond(config, artifacts, quick ? 2 : 3);
    var runDir = Path.Combine(scratch, "cnn");
    List<MetricsRow> metrics;
    int trainCount;
    using (var run = TrainingRun.Start(config, runDir, artifacts, progress))
    {
        run.Run();
        trainCount = run.Manifest.Dataset.TrainCount;
        metrics = TrainingRun.ReadMetrics(RunLayout.Metrics(runDir)).Where(m => m.Epoch > 0).ToList();
    }
    double snapshotRatio = Median(metrics.Select(m => m.SnapshotSeconds / m.TrainSeconds));
    Report("snapshot cost: snapshot write ÷ epoch training time (fourconv, mnist)", $"{snapshotRatio:P2}", "≤ 2%", snapshotRatio <= 0.02);

    bareSpeeds.AddRange(BareLoopImagesPerSecond(config, artifacts, quick ? 2 : 3));
    double bare = Median(bareSpeeds);
    double trainOnly = Median(metrics.Select(m => m.ImagesPerSecond));
    double wholeEpoch = Median(progress.EpochSeconds.Skip(1).Select(s => trainCount / s));
    Report("baseline: bare training loop over preloaded tensors", $"{bare:F0} images/s", "—", null);
    Report("full loop, training pass (gradient noise, step accounting) vs bare", $"{trainOnly:F0} images/s, overhead {1 - trainOnly / bare:P1}", "≤ 10%", 1 - trainOnly / bare <= 0.10);
    Report("full loop, whole epoch (also test evaluation, snapshot, checkpoint) vs bare", $"{wholeEpoch:F0} images/s, overhead {1 - wholeEpoch / bare:P1}", "≤ 10%", 1 - wholeEpoch / bare <= 0.10);
}

// 5. Issue 3: the analysis against DuckDB, memory, FFT MSD.
if (Section("analysis")) AnalysisBench.Run(scratch, quick, Report, Median);

// 6. Issue 4: thermo prune against its evaluations.
if (Section("pruning")) PruningBench.Run(scratch, artifacts, quick, Report, Median);

// 7. Issue 6: training throughput of every model.
if (Section("models")) ModelBench.Run(quick, Report, Median);

// 8. Issue 10: training speed against Debian's PyTorch on the same files.
if (Section("peer")) PeerBench.Run(repoRoot, artifacts, scratch, quick, Report, Median);

// 9. Issue 14: the full pruning protocol's ledger, from its run manifests (no training here).
if (Section("ledger")) LedgerBench.Run(repoRoot, Report, Median);

// 10. Checkpoint series of other trainers (GPT-2 small shape): in-place analysis against a plain read
// and a PyTorch script, peak memory, import throughput.
if (Section("checkpoints")) CheckpointBench.Run(repoRoot, scratch, quick, Report, Median);
// 11. thermo watch: event latency, the server's memory with 20 runs of 200 epochs open, the page's load time in a browser.
if (Section("watch")) WatchBench.Run(repoRoot, scratch, quick, Report, Median);

var machine = $"{Environment.ProcessorCount} cores, {CpuModel()}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";
var md = new StringBuilder();
md.AppendLine("# Benchmarks").AppendLine();
md.AppendLine("Written by `dotnet fsi build.fsx bench` (Thermo.Bench). Figures are medians over repeats; every ratio's baseline was measured in the same run.").AppendLine();
md.AppendLine($"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC{(quick ? " (quick mode)" : "")}{(only is null ? "" : $" (sections: {string.Join(", ", only)})")}");
md.AppendLine($"- machine: {machine}").AppendLine();
md.AppendLine("| measurement | result | target | |").AppendLine("|---|---|---|---|");
foreach (var r in rows) md.AppendLine($"| {r.Name} | {r.Value} | {r.Target} | {r.Verdict} |");
var notes = Path.Combine(Path.GetDirectoryName(output)!, "BENCHMARKS.notes.md");
if (File.Exists(notes)) md.AppendLine().Append(File.ReadAllText(notes));
// The soak section (written by `build.fsx soak`), the ledger section (by `--only ledger`, below), the
// checkpoint-series section (from `--only checkpoints`, edited by hand) and the watch section (from
// `--only watch`, edited by hand) are carried over as they stand.
var documented = Path.Combine(repoRoot, "docs", "BENCHMARKS.md");
string? Block(string text, string name) =>
    text.IndexOf($"<!-- {name} -->", StringComparison.Ordinal) is >= 0 and var start
    && text.IndexOf($"<!-- /{name} -->", StringComparison.Ordinal) is var end && end > start
        ? text[start..(end + $"<!-- /{name} -->".Length)] : null;
var previous = File.Exists(documented) ? File.ReadAllText(documented) : "";
if (Section("ledger"))
{
    // The ledger's rows go to their own block of docs/BENCHMARKS.md, whatever else this run wrote.
    var block = new StringBuilder("<!-- ledger -->\n## Results ledger\n\n")
        .AppendLine($"Written by `dotnet fsi build.fsx bench -- --only ledger` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC from results/pruning-paper-full/ (machine: {Environment.ProcessorCount} cores, {CpuModel()}).").AppendLine()
        .AppendLine("| measurement | result | target | |").AppendLine("|---|---|---|---|");
    foreach (var r in rows.Where(r => r.Name.StartsWith("ledger:", StringComparison.Ordinal))) block.AppendLine($"| {r.Name} | {r.Value} | {r.Target} | {r.Verdict} |");
    block.Append("<!-- /ledger -->");
    var old = Block(previous, "ledger");
    previous = old is null ? previous.TrimEnd() + "\n\n" + block + "\n" : previous.Replace(old, block.ToString());
    if (File.Exists(documented)) AtomicFile.writeAllText(documented, previous);
}
foreach (var name in new[] { "ledger", "soak", "checkpoints", "watch" })
    if (Block(previous, name) is { } kept) md.AppendLine().AppendLine(kept);
Directory.CreateDirectory(Path.GetDirectoryName(output)!);
AtomicFile.writeAllText(output, md.ToString());
Console.WriteLine($"wrote {output}");
if (Environment.GetEnvironmentVariable("THERMO_PROBE_DEBUG") is null) Directory.Delete(scratch, true);
return 0;

// Seconds to write `bytes` zero bytes through a 1 MiB-buffered FileStream, closed (not fsynced).
static double PlainWrite(string path, long bytes)
{
    var chunk = new byte[1 << 22];
    var sw = Stopwatch.StartNew();
    using (var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        for (long left = bytes; left > 0; left -= chunk.Length) f.Write(chunk, 0, (int)Math.Min(chunk.Length, left));
    double seconds = sw.Elapsed.TotalSeconds;
    File.Delete(path);
    return seconds;
}

static string FindRoot()
{
    var dir = new DirectoryInfo(AppContext.BaseDirectory);
    while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Thermo.sln"))) dir = dir.Parent;
    return dir?.FullName ?? Directory.GetCurrentDirectory();
}

static string CpuModel()
{
    try { return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "unknown CPU"; }
    catch (IOException) { return "unknown CPU"; }
}

// The same model, data, optimiser and batches as the trainer, with nothing else: no gradient-noise
// signal, no metrics, no evaluation, no snapshots. Images/s of each epoch.
static List<double> BareLoopImagesPerSecond(TrainConfig config, string artifacts, int epochs)
{
    var data = Thermo.Trainer.Data.DataSources.Load(config.Dataset, null, artifacts, _ => { });
    torch.set_num_threads(Environment.ProcessorCount);
    var t = data.Train;
    using var x = ModelInputs.Of(t, ModelInputs.Graphs(config.ResolvedGraph, data, artifacts, _ => { })?.Train);
    using var y = tensor(t.Labels);
    torch.manual_seed(config.Seed);
    using var model = ModelFactory.Create(config.Model, t.Channels, t.Height, t.Width, data.Classes, config.Widths, config.Dropout, config.ResolvedGraph);
    using var optimizer = torch.optim.Adam(model.parameters(), config.Lr, weight_decay: config.WeightDecay);
    var speeds = new List<double>();
    for (int e = 0; e <= epochs; e++) // epoch 0 warms up (allocator, kernels) and is not counted
    {
        model.train();
        var sw = Stopwatch.StartNew();
        using var permutation = randperm(t.Count);
        for (int start = 0; start < t.Count; start += config.BatchSize)
        {
            using var scope = NewDisposeScope();
            var index = permutation.narrow(0, start, Math.Min(config.BatchSize, t.Count - start));
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.forward(x.index_select(0, index)), y.index_select(0, index));
            loss.backward();
            optimizer.step();
        }
        if (e > 0) speeds.Add(t.Count / sw.Elapsed.TotalSeconds);
    }
    return speeds;
}

/// <summary>Records the wall time of each epoch and, optionally, the resident set after it.</summary>
sealed class EpochClock : ITrainingProgress
{
    readonly Stopwatch clock = Stopwatch.StartNew();
    double last;
    public bool SampleMemory { get; init; }
    public List<double> EpochSeconds { get; } = [];
    public Dictionary<int, double> ResidentBytes { get; } = [];
    public void Message(string text) { }
    public void EpochStarted(int epoch, int lastEpoch, int batches) { }
    public void BatchCompleted(int batch, double loss) { }
    public void EpochCompleted(MetricsRow metrics, int lastEpoch, TimeSpan? eta)
    {
        double now = clock.Elapsed.TotalSeconds;
        EpochSeconds.Add(now - last);
        last = now;
        if (SampleMemory)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using var self = Process.GetCurrentProcess();
            ResidentBytes[metrics.Epoch] = self.WorkingSet64;
        }
    }
}
