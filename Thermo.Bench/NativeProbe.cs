using System.Security.Cryptography;
using Thermo.Trainer.Data;
using Thermo.Trainer.Models;
using Thermo.Trainer.Native;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// The bisection harness of docs/NATIVE.md: a minimal TorchSharp training loop (the 4-conv CNN,
/// Adam, preloaded MNIST tensors) to which the project's pieces are added back one flag at a time,
/// counting the runs that produce a non-finite loss or weight.
/// Usage: Thermo.Bench native-probe [--layer-timing] [--runs 12] [--epochs 2] [--limit 1024] [--batch 64]
///   [--widths 4,4,8,8] [--threads 2] [--model fourconv|lenet|mlp2] [--kernels onednn|onednn-aligned|aten] [--isa AVX2]
///   [--channels-last] [--poison] [--scopes] [--gradnoise] [--eval] [--parquet] [--skia]
/// </summary>
static class NativeProbe
{
    public const string Verb = "native-probe";

    /// <summary>The same values with NHWC strides (TorchSharp has no memory_format argument).</summary>
    static Tensor ChannelsLast(Tensor x) => x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    /// <summary>Milliseconds per forward + backward of each of the CNN's convolutions (and their block-aligned
    /// sizes) at batch 128, median of 3 × 20, on the kernels chosen (--layer-timing).</summary>
    static void LayerTiming()
    {
        manual_seed(1);
        foreach (var (ic, oc, k, size) in new[] { (1, 12, 5, 28), (1, 16, 5, 28), (12, 24, 3, 24), (12, 32, 3, 24), (24, 48, 3, 11), (32, 48, 3, 11), (48, 48, 3, 9) })
        {
            var x = randn(128, ic, size, size).requires_grad_(ic > 1);
            var w = randn(oc, ic, k, k).requires_grad_();
            var b = randn(oc).requires_grad_();
            var times = new List<double>();
            for (int rep = 0; rep < 3; rep++)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                for (int i = 0; i < 20; i++)
                {
                    using var scope = NewDisposeScope();
                    nn.functional.conv2d(x, w, b).sum().backward();
                }
                times.Add(clock.Elapsed.TotalMilliseconds / 20);
            }
            Console.WriteLine($"conv {ic}->{oc} {k}x{k} on {size}: {times.Order().ElementAt(1):F2} ms fwd+bwd");
        }
    }

    public static int Run(string[] args, string artifacts)
    {
        string Option(string name, string fallback) { int i = Array.IndexOf(args, name); return i >= 0 ? args[i + 1] : fallback; }
        bool Flag(string name) => args.Contains(name);
        // Environment switches first: oneDNN reads them once, at its first use.
        if (Option("--isa", "") is { Length: > 0 } isa) NativeTorch.SetNativeEnvironment("ONEDNN_MAX_CPU_ISA", isa);
        int runs = int.Parse(Option("--runs", "12")), epochs = int.Parse(Option("--epochs", "2")), limit = int.Parse(Option("--limit", "1024"));
        int batch = int.Parse(Option("--batch", "64")), threads = int.Parse(Option("--threads", "2"));
        var widths = Option("--widths", "4,4,8,8").Split(',').Select(int.Parse).ToArray();
        var modelName = Option("--model", "fourconv");
        bool channelsLast = Flag("--channels-last"), poison = Flag("--poison"), scopes = Flag("--scopes"), gradNoise = Flag("--gradnoise"), eval = Flag("--eval");
        bool parquet = Flag("--parquet"), skia = Flag("--skia");
        torch.set_num_threads(threads);
        NativeSetup.Use(NativeSetup.Parse(Option("--kernels", "onednn"), "--kernels"));
        if (skia) { using var surface = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(64, 64)); surface.Canvas.Clear(SkiaSharp.SKColors.White); }

        if (Flag("--layer-timing")) { LayerTiming(); return 0; }
        var data = DataSources.Load("mnist-10k", null, artifacts, _ => { });
        var train = data.Train.Take(limit);
        var x = tensor(train.Pixels, [train.Count, train.Channels, train.Height, train.Width]);
        var y = tensor(train.Labels);
        if (channelsLast) x = ChannelsLast(x);
        int diverged = 0;
        var digests = new List<string>();
        var speeds = new List<double>();
        for (int r = 0; r < runs; r++)
        {
            torch.manual_seed(1);
            // The probe feeds images, which gcn and gat read on the tiling.
            var model = ModelFactory.Create(modelName, 1, 28, 28, 10, modelName == "fourconv" ? widths : null, 0.1, ImageGraphs.TakesGraph(modelName) ? ImageGraphs.Tiles : null);
            
            var optimizer = torch.optim.Adam(model.parameters(), 1e-3);
            var weights = model.named_parameters().Where(p => p.name.EndsWith("weight")).Select(p => p.parameter).ToArray();
            string? failure = null;
            long step = 0;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int epoch = 1; epoch <= epochs && failure is null; epoch++)
            {
                torch.manual_seed(1_000_003L + epoch);
                model.train();
                var permutation = randperm(train.Count);
                for (int start = 0; start < train.Count && failure is null; start += batch, step++)
                {
                    using var scope = scopes ? NewDisposeScope() : null;
                    if (poison) NumericsSelfCheck.PoisonFreedMemory();
                    var index = permutation.narrow(0, start, Math.Min(batch, train.Count - start));
                    var xb = x.index_select(0, index);
                    if (channelsLast) xb = ChannelsLast(xb);
                    optimizer.zero_grad();
                    var loss = nn.functional.cross_entropy(model.forward(xb), y.index_select(0, index));
                    loss.backward();
                    if (gradNoise) stack(weights.Select(w => w.grad!.abs().mean()).ToArray()).cpu().data<float>().ToArray();
                    optimizer.step();
                    if (!float.IsFinite(loss.item<float>())) failure = $"loss {loss.item<float>()} at epoch {epoch} step {step}";
                }
                if (eval) Thermo.Trainer.Evaluation.TestEvaluation.TestMetrics(model, x.narrow(0, 0, Math.Min(500, train.Count)), y.narrow(0, 0, Math.Min(500, train.Count)));
                if (parquet)
                {
                    var tensors = model.named_parameters().Select(p => new Thermo.Analysis.Format.TensorSnapshot(p.name, "weight", p.parameter.shape.Select(d => (int)d).ToArray(),
                        p.parameter.detach().cpu().contiguous().data<float>().ToArray())).ToArray();
                    var path = Path.Combine(Path.GetTempPath(), $"native-probe-{Environment.ProcessId}.parquet");
                    Thermo.Analysis.Format.SnapshotWriter.write(Thermo.Analysis.Format.SnapshotFileFormat.Parquet, path, new Thermo.Analysis.Format.Snapshot(epoch, step, tensors));
                    File.Delete(path);
                }
            }
            speeds.Add(step * (double)batch / clock.Elapsed.TotalSeconds);
            var values = model.parameters().SelectMany(p => p.detach().cpu().contiguous().data<float>().ToArray()).ToArray();
            if (failure is null && values.Any(v => !float.IsFinite(v))) failure = "non-finite weight at the end";
            if (failure is not null) diverged++;
            else digests.Add(Convert.ToHexString(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())))[..12]);
            Console.WriteLine($"run {r + 1}: {failure ?? "ok " + digests[^1]}");
            optimizer.Dispose();
            model.Dispose();
        }
        Console.WriteLine($"diverged {diverged} of {runs}; distinct final digests {digests.Distinct().Count()}; median {speeds.Order().ElementAt(speeds.Count / 2):F0} images/s");
        return 0;
    }
}
