using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Physics;

/// <summary>
/// Checkpoint series of other trainers: a GPT-2-small-shaped state dict (124M float32 parameters)
/// walked by small random steps and written by Debian's PyTorch (peer/checkpoint_series.py) as
/// torch.save files in float32 and bfloat16 and as sharded safetensors checkpoint-N directories.
/// Thermo's in-place analysis (CheckpointRuns.Analyze, MSD off) against reading the same files (`cat`
/// to /dev/null, and a stricter in-process read with 4 MiB reads) and against a plain PyTorch script
/// computing the same per-layer and per-unit temperatures (peer/checkpoint_temperatures.py); Thermo's peak memory in a child `thermo analyze`; `import`
/// throughput. Every time is a median over repeats with the files already in the page cache.
/// </summary>
static class CheckpointBench
{
    const string Python = "/usr/bin/python3";

    public static void Run(string repoRoot, string scratch, bool quick,
        Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        if (!HasTorch())
        {
            report("checkpoint series", "skipped: Debian's python3-torch is not installed (the bench target installs it as root)", "—", null);
            return;
        }
        // Full size: 10 float32 checkpoints; the bfloat16 and sharded series have 5 so that the section
        // fits in about 20 minutes on two cores, and the float32 import (5 GB of values) runs once.
        int checkpoints = quick ? 4 : 10, bf16 = quick ? 4 : 5, sharded = quick ? 4 : 5, repeats = 3, importRepeats = quick ? 3 : 1;
        // Thermo's analysis and its plain-read baseline take under a second each and vary by tens of
        // percent between runs on a shared machine: more pairs than the PyTorch script's runs, which
        // take tens of seconds and vary less.
        int analysisRepeats = 5;
        // Sizes: GPT-2 small (vocabulary 50257, context 1024, width 768, 12 blocks), or about 10M parameters.
        string[] sizes = quick ? ["--vocab", "8192", "--ctx", "512", "--d", "384", "--layers", "4", "--shard-mb", "16"]
                               : ["--vocab", "50257", "--ctx", "1024", "--d", "768", "--layers", "12", "--shard-mb", "200"];
        int blocks = int.Parse(sizes[7]);
        var root = Path.Combine(scratch, "checkpoints");
        // float32 series, bf16 series (half the bytes), sharded float32, and one import of the float32 series.
        double needed = (quick ? 10.5e6 : 124.5e6) * 4 * (checkpoints * 2 + bf16 * 0.5 + sharded) * 1.1;
        Directory.CreateDirectory(root);
        long free = new DriveInfo(Path.GetPathRoot(Path.GetFullPath(root))!).AvailableFreeSpace;
        if (free < needed)
        {
            report("checkpoint series", $"skipped: {free / 1e9:F1} GB free where {needed / 1e9:F1} GB are needed", "—", null);
            return;
        }
        try
        {
            var generated = Peer(Path.Combine(repoRoot, "Thermo.Bench", "peer", "checkpoint_series.py"),
                [root, "--checkpoints", $"{checkpoints}", "--bf16", $"{bf16}", "--sharded", $"{sharded}", .. sizes]);
            long parameters = generated.GetProperty("parameters").GetInt64();
            double checkpointMegabytes = generated.GetProperty("checkpoint_bytes").GetInt64() / 1e6;
            report($"checkpoint series written by PyTorch (peer/checkpoint_series.py): {parameters / 1e6:F1}M parameters (GPT-2-{(quick ? "shaped, small" : "small shape")}), one float32 checkpoint {checkpointMegabytes:F0} MB",
                $"{checkpoints} float32 + {bf16} bfloat16 torch.save files, {sharded} sharded safetensors checkpoint-N directories, written in {generated.GetProperty("seconds").GetDouble():F0} s", "—", null);

            // Layers whose temperatures are compared with PyTorch's: the largest, one of the first
            // block, one of the last, a 1-D one.
            string[] compared = ["transformer.wte", "transformer.h.0.attn.c_attn", $"transformer.h.{blocks - 1}.mlp.c_proj", "transformer.ln_f"];
            var variants = new (string Name, string Folder, string[] Inputs)[]
            {
                ("float32 torch.save", "float32", Enumerable.Range(0, checkpoints).Select(k => Path.Combine(root, "float32", $"step_{k}.pt")).ToArray()),
                ("bfloat16 torch.save", "bfloat16", Enumerable.Range(0, bf16).Select(k => Path.Combine(root, "bfloat16", $"step_{k}.pt")).ToArray()),
                ("sharded safetensors (float32)", "sharded", Enumerable.Range(0, sharded).Select(k => Path.Combine(root, "sharded", $"checkpoint-{k}")).ToArray()),
            };
            double? floatAnalysis = null;
            foreach (var (name, folder, inputs) in variants)
            {
                var files = Directory.EnumerateFiles(Path.Combine(root, folder), "*", SearchOption.AllDirectories).Order().ToArray();
                double megabytes = files.Sum(f => new FileInfo(f).Length) / 1e6;
                ReadAll(files); // the page cache holds them from here on
                var options = AnalysisOptions.Default.WithWindow(WindowSpec.NewBetween(0, inputs.Length - 1)).WithMsdLayers([]);
                var read = CheckpointRuns.ReadOptions([], []);
                var readTimes = new List<double>();
                var catTimes = new List<double>();
                var thermoTimes = new List<double>();
                var peerTimes = new List<double>();
                AnalysisResult? result = null;
                JsonElement peer = default;
                // Each analysis right after its two baselines, one after another; the PyTorch script's
                // runs after them all, so that no analysis follows a process of gigabytes that ran
                // between two of them.
                for (int r = 0; r < analysisRepeats; r++)
                {
                    catTimes.Add(CatAll(files));
                    readTimes.Add(ReadAll(files));
                    var sw = Stopwatch.StartNew();
                    var (analysed, _) = CheckpointRuns.Analyze(inputs, read, false, options, null);
                    thermoTimes.Add(sw.Elapsed.TotalSeconds);
                    result = analysed;
                    GC.Collect();
                }
                for (int r = 0; r < repeats; r++)
                {
                    peer = Peer(Path.Combine(repoRoot, "Thermo.Bench", "peer", "checkpoint_temperatures.py"),
                        [.. inputs, "--threads", $"{Environment.ProcessorCount}", "--report", string.Join(",", compared)]);
                    peerTimes.Add(peer.GetProperty("seconds").GetDouble());
                }
                // The same work: Thermo's per-layer T and drift T and the first units' T against PyTorch's.
                double worst = 0;
                foreach (var layer in compared)
                {
                    var theirs = peer.GetProperty("layers").GetProperty(layer);
                    var ours = result!.Layers.Single(g => g.Key.Layer == layer).Temperature;
                    worst = Math.Max(worst, Relative(ours.Temperature, theirs.GetProperty("T").GetDouble()));
                    worst = Math.Max(worst, Relative(ours.Drift, theirs.GetProperty("T_drift").GetDouble()));
                    int u = 0;
                    foreach (var unit in theirs.GetProperty("units").EnumerateArray())
                    {
                        var group = result.Groups.Single(g => g.Key.Layer == layer && g.Key.Unit == u);
                        worst = Math.Max(worst, Relative(group.Temperature.Temperature, unit.GetDouble()));
                        u++;
                    }
                }
                report($"{name}: Thermo's temperatures against PyTorch's ({compared.Length} layers: T, drift T, first {peer.GetProperty("layers").GetProperty(compared[0]).GetProperty("units").GetArrayLength()} units' T)",
                    $"largest relative difference {worst:E1}", "≤ 1e-6", worst <= 1e-6);
                double plain = median(readTimes), cat = median(catTimes), thermo = median(thermoTimes), torchTime = median(peerTimes);
                if (folder == "float32") floatAnalysis = thermo;
                string Runs(List<double> times) => string.Join(", ", times.Select(t => t.ToString("F2", CultureInfo.InvariantCulture)));
                report($"{name}, {inputs.Length} checkpoints ({megabytes:F0} MB): baseline `cat` of the files to /dev/null (page cache warm)",
                    $"{cat:F2} s ({megabytes / cat:F0} MB/s; runs {Runs(catTimes)})", "—", null);
                report($"{name}, {inputs.Length} checkpoints: baseline read of the files in this process (FileStream, one thread, 4 MiB reads, page cache warm)",
                    $"{plain:F2} s ({megabytes / plain:F0} MB/s; runs {Runs(readTimes)})", "—", null);
                report($"{name}, {inputs.Length} checkpoints: baseline PyTorch {peer.GetProperty("torch").GetString()} script (torch.load, per-unit and per-layer T, {peer.GetProperty("threads").GetInt32()} threads)",
                    $"{torchTime:F2} s (runs {Runs(peerTimes)})", "—", null);
                report($"{name}, {inputs.Length} checkpoints: Thermo in-place analysis ÷ `cat` to /dev/null",
                    $"{thermo:F2} s ÷ {cat:F2} s = {thermo / cat:F2} (runs {Runs(thermoTimes)})", "≤ 2", thermo / cat <= 2);
                report($"{name}, {inputs.Length} checkpoints: Thermo in-place analysis ÷ the in-process read (stricter)",
                    $"{thermo:F2} s ÷ {plain:F2} s = {thermo / plain:F2}", "—", null);
                report($"{name}, {inputs.Length} checkpoints: Thermo in-place analysis ÷ PyTorch script",
                    $"{thermo:F2} s ÷ {torchTime:F2} s = {thermo / torchTime:F2}", "≤ 1.0", thermo / torchTime <= 1.0);
            }

            // Peak memory of `thermo analyze` of the float32 series in a child process (the whole
            // process: runtime, JIT, the analysis and its tables written), polled from /proc.
            var floatInputs = Path.Combine(root, "float32");
            // With its defaults (MSD of the first layer small enough, here transformer.wpe), as a user
            // runs it, and without MSD, as the timed analyses above.
            foreach (var (what, msd) in new[] { ("with its defaults", Array.Empty<string>()), ("with --msd-layers none", ["--msd-layers", "none"]) })
            {
                var processes = Enumerable.Range(0, repeats).Select(_ => ThermoAnalyzeProcess(floatInputs, Path.Combine(scratch, "checkpoint-analysis"), checkpoints, msd)).ToList();
                var peaks = processes.Select(p => p.Peak).ToList();
                double peak = median(peaks) / 1e6;
                report($"peak memory (VmHWM) of the process `thermo analyze` of the float32 series {what} ÷ one float32 checkpoint",
                    $"{peak:F0} MB ÷ {checkpointMegabytes:F0} MB = {peak / checkpointMegabytes:F2} (runs {string.Join(", ", peaks.Select(p => (p / 1e6).ToString("F0", CultureInfo.InvariantCulture)))} MB)",
                    "≤ 2", peak / checkpointMegabytes <= 2);
                var seconds = processes.Select(p => p.Seconds).ToList();
                report($"the whole command `thermo analyze` of the float32 series {what} (start-up, compilation, analysis, tables written)",
                    $"{median(seconds):F2} s (runs {string.Join(", ", seconds.Select(t => t.ToString("F2", CultureInfo.InvariantCulture)))})", "—", null);
            }

            // Import of the float32 series into a Thermo run (Parquet snapshots, float32 values).
            var importTimes = new List<double>();
            var imported = Path.Combine(scratch, "checkpoint-import");
            long importBytes = 0;
            for (int r = 0; r < importRepeats; r++)
            {
                var sw = Stopwatch.StartNew();
                CheckpointRuns.Import([floatInputs], CheckpointRuns.ReadOptions([], []), false, imported, null);
                importTimes.Add(sw.Elapsed.TotalSeconds);
                importBytes = Directory.EnumerateFiles(imported, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
                Directory.Delete(imported, true);
            }
            double valuesMegabytes = checkpointMegabytes * checkpoints;
            double import = median(importTimes);
            report($"import of the float32 series ({checkpoints} checkpoints, {valuesMegabytes:F0} MB of float32 values) into a Thermo run",
                $"{valuesMegabytes / import:F0} MB/s of values ({import:F1} s{(importRepeats == 1 ? ", one run" : "")}; runs {string.Join(", ", importTimes.Select(t => t.ToString("F1", CultureInfo.InvariantCulture)))}; run {importBytes / 1e6:F0} MB"
                + (floatAnalysis is { } a ? $"; in-place analysis {a:F1} s" : "") + ")", "—", null);
        }
        finally
        {
            if (Environment.GetEnvironmentVariable("THERMO_PROBE_DEBUG") is null && Directory.Exists(root)) Directory.Delete(root, true);
        }
    }

    static double Relative(double a, double b) => Math.Abs(a - b) / Math.Max(Math.Abs(b), double.Epsilon);

    /// Seconds of `cat FILES > /dev/null` (a shell does the redirection, so nothing passes through
    /// this process), the way a user would time reading the files.
    static double CatAll(string[] files)
    {
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        foreach (var a in (string[])["-c", "exec cat \"$@\" > /dev/null", "sh", .. files]) start.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var cat = Process.Start(start)!;
        cat.WaitForExit();
        double seconds = sw.Elapsed.TotalSeconds;
        if (cat.ExitCode != 0) throw new InvalidOperationException($"cat of the checkpoint files exited with {cat.ExitCode}");
        return seconds;
    }

    /// Seconds to read every byte of `files` through a FileStream in 4 MiB reads.
    static double ReadAll(string[] files)
    {
        var buffer = new byte[1 << 22];
        var sw = Stopwatch.StartNew();
        long total = 0;
        foreach (var file in files)
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            int got;
            while ((got = stream.Read(buffer, 0, buffer.Length)) > 0) total += got;
        }
        return sw.Elapsed.TotalSeconds;
    }

    /// Runs `thermo analyze INPUT --out OUT --window 0:N-1 EXTRA…` (the thermo.dll built beside this
    /// bench) and returns its peak resident set in bytes, VmHWM polled every 20 ms, and its wall time
    /// in seconds (start-up, compilation, the analysis and its tables written: what a user waits for).
    static (double Peak, double Seconds) ThermoAnalyzeProcess(string input, string output, int checkpoints, string[] extra)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[Path.Combine(AppContext.BaseDirectory, "thermo.dll"), "analyze", input, "--out", output, "--window", $"0:{checkpoints - 1}", .. extra])
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        // Read while the process lives: on Linux its start time comes from /proc.
        var started = p.StartTime;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        long peak = 0;
        var status = $"/proc/{p.Id}/status";
        while (!p.HasExited)
        {
            try
            {
                foreach (var line in File.ReadLines(status))
                    if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                        peak = Math.Max(peak, long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            Thread.Sleep(20);
        }
        p.WaitForExit();
        // From the process's start and the moment its exit was seen, not the polling loop's.
        double seconds = (p.ExitTime - started).TotalSeconds;
        if (p.ExitCode != 0) throw new InvalidOperationException($"thermo analyze failed ({p.ExitCode}): {stderr.Result}{stdout.Result}");
        if (Directory.Exists(output)) Directory.Delete(output, true);
        return (peak, seconds);
    }

    static bool HasTorch()
    {
        if (!File.Exists(Python)) return false;
        using var p = Process.Start(new ProcessStartInfo(Python, ["-c", "import torch"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    /// Runs a peer script with Debian's python3 and returns its last stdout line as JSON.
    internal static JsonElement Peer(string script, string[] arguments)
    {
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{script} failed ({p.ExitCode}): {stderr.Result}");
        using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        return json.RootElement.Clone();
    }
}
