using Thermo.Analysis.Run;
using System.Diagnostics;
using System.Text.Json;
using Thermo.Trainer.Native;
using Thermo.Trainer.Training;

/// <summary>
/// Issue 10: training speed of the paper's CNN against Debian's PyTorch (python3-torch, 1.13) on the same
/// MNIST IDX files, batch 128, the same threads, alternating the two so drift in the machine's speed
/// hits both alike. Thermo runs on its default kernels (oneDNN, block-aligned) and on its ATen fallback.
/// </summary>
static class PeerBench
{
    const string Python = "/usr/bin/python3";

    public static void Run(string repoRoot, string artifacts, string scratch, bool quick,
        Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        if (!HasTorch())
        {
            report("training throughput against PyTorch", "skipped: Debian's python3-torch is not installed (the bench target installs it as root)", "—", null);
            return;
        }
        int threads = Environment.ProcessorCount, repeats = quick ? 1 : 3, epochs = quick ? 2 : 3;
        var idx = Thermo.Trainer.Data.DataSources.EnsureDefault("mnist-10k", artifacts, _ => { });
        var script = Path.Combine(repoRoot, "Thermo.Bench", "peer", "pytorch_fourconv.py");
        var speeds = new Dictionary<string, List<double>> { ["peer"] = [], ["onednn-aligned"] = [], ["aten"] = [] };
        string version = "?";
        var before = NativeSetup.Configured;
        for (int r = 0; r < repeats; r++)
        {
            foreach (var kernels in new[] { ConvolutionKernels.OneDnnAligned, ConvolutionKernels.Aten })
            {
                speeds[NativeSetup.Name(kernels)].Add(ThermoImagesPerSecond(kernels, artifacts, Path.Combine(scratch, $"peer-{r}-{NativeSetup.Name(kernels)}"), epochs, threads, median));
            }
            var (imagesPerSecond, torchVersion) = PeerImagesPerSecond(script, idx, threads, epochs);
            speeds["peer"].Add(imagesPerSecond);
            version = torchVersion;
        }
        NativeSetup.Configure(before);
        double peer = median(speeds["peer"]);
        report($"baseline: PyTorch {version} (Debian python3-torch) training the same CNN on the same files, batch 128, {threads} threads",
            $"{peer:F0} images/s (runs: {string.Join(", ", speeds["peer"].Select(s => s.ToString("F0")))})", "—", null);
        foreach (var kernels in new[] { "onednn-aligned", "aten" })
        {
            double thermo = median(speeds[kernels]);
            bool isDefault = kernels == "onednn-aligned";
            report($"training throughput, Thermo ({kernels}{(isDefault ? ", the default" : ", the fallback")}) ÷ PyTorch",
                $"{thermo:F0} ÷ {peer:F0} images/s = {thermo / peer:F2} (runs: {string.Join(", ", speeds[kernels].Select(s => s.ToString("F0")))})",
                isDefault ? "≥ 1.0" : "—", isDefault ? thermo / peer >= 1.0 : null);
        }
    }

    static bool HasTorch()
    {
        if (!File.Exists(Python)) return false;
        using var p = Process.Start(new ProcessStartInfo(Python, ["-c", "import torch"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    /// <summary>The trainer's own training-pass images/s (epoch metrics), median over the epochs after the first.</summary>
    static double ThermoImagesPerSecond(ConvolutionKernels kernels, string artifacts, string runDir, int epochs, int threads, Func<IEnumerable<double>, double> median)
    {
        NativeSetup.Configure(kernels);
        var config = new TrainConfig { Epochs = epochs, Seed = 1, Threads = threads, Dataset = "mnist-10k" };
        using (var run = TrainingRun.Start(config, runDir, artifacts, new SilentProgress())) run.Run();
        // The trainer starts from the configured kernels and may fall back: what ran is in run.json.
        var ran = RunManifest.TryLoad(runDir)?.Native?.Convolutions;
        if (ran != NativeSetup.Name(kernels))
            throw new InvalidOperationException($"the peer benchmark asked for {NativeSetup.Name(kernels)} convolutions but the run trained on {ran}");
        var metrics = TrainingRun.ReadMetrics(RunLayout.Metrics(runDir)).Where(m => m.Epoch > 1).ToList();
        Directory.Delete(runDir, true);
        return median(metrics.Select(m => m.ImagesPerSecond));
    }

    static (double ImagesPerSecond, string Version) PeerImagesPerSecond(string script, string idx, int threads, int epochs)
    {
        var json = CheckpointBench.Peer(script, [idx, "--threads", threads.ToString(), "--batch-size", "128", "--epochs", epochs.ToString()]);
        return (json.GetProperty("images_per_second").GetDouble(), json.GetProperty("torch").GetString() ?? "?");
    }
}
