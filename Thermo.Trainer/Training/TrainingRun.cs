using Thermo.Trainer.Evaluation;
using System.Diagnostics;
using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Trainer.Data;
using Thermo.Trainer.Models;
using Thermo.Trainer.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Thermo.Trainer.Training;

/// <summary>What the trainer reports while it works; the CLI renders it.</summary>
public interface ITrainingProgress
{
    void Message(string text);
    void EpochStarted(int epoch, int lastEpoch, int batches);
    void BatchCompleted(int batch, double loss);
    void EpochCompleted(MetricsRow metrics, int lastEpoch, TimeSpan? eta);
}

/// <summary>A progress sink that says nothing (tests, benchmarks).</summary>
public sealed class SilentProgress : ITrainingProgress
{
    public void Message(string text) { }
    public void EpochStarted(int epoch, int lastEpoch, int batches) { }
    public void BatchCompleted(int batch, double loss) { }
    public void EpochCompleted(MetricsRow metrics, int lastEpoch, TimeSpan? eta) { }
}

/// <summary>
/// Trains a model and writes its run directory: snapshots, metrics, gradient noise, checkpoints and
/// the manifest, each epoch, in an order that leaves only complete files behind at any instant.
///
/// Determinism: the model is initialised under <c>manual_seed(seed)</c>; at the start of epoch e the
/// torch generator (shuffling and dropout) is reseeded with a value derived from (seed, e), so the RNG
/// state of every epoch is a pure function of the seed and a resumed run needs only the model and
/// optimiser state of its last complete epoch to continue bit for bit.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    readonly TrainConfig config;
    readonly string runDirectory;
    readonly ITrainingProgress progress;
    readonly ImageDataset dataset;
    readonly Module<Tensor, Tensor> model;
    readonly OptimizerHelper optimizer;
    readonly Tensor trainX, trainY, testX, testY;
    readonly (string Layer, Parameter Weight)[] weights;
    /// <summary>The weights the pla/plea losses displace (empty for plain cross-entropy).</summary>
    readonly Tensor[] smoothed;
    /// <summary>The conv and linear kernels the Keras-style L2 term acts on (weights of two or more dimensions).</summary>
    readonly Tensor[] kernels;
    readonly Device device;
    readonly SnapshotFileFormat format;
    readonly List<MetricsRow> metrics = [];
    readonly List<GradientNoiseRow> gradNoise = [];
    RunManifest manifest;
    long step;
    readonly RunLock runLock;

    public Module<Tensor, Tensor> Model => model;
    public RunManifest Manifest => manifest;

    TrainingRun(TrainConfig config, string runDirectory, string artifacts, ITrainingProgress progress, RunManifest? resumeFrom, RunLock runLock)
    {
        this.runLock = runLock;
        // The run records the graph its model sees, so a resumed run or a copy of its configuration sees the same one.
        config = config with { Graph = config.ResolvedGraph };
        this.config = config;
        this.runDirectory = runDirectory;
        this.progress = progress;
        format = config.Format == "arrow" ? SnapshotFileFormat.Arrow : SnapshotFileFormat.Parquet;
        if (config.Device == "cuda" && !cuda.is_available())
            throw new SettingException(nameof(TrainConfig.Device), "", "cuda: CUDA is not available (this build uses TorchSharp-cpu)");
        device = new Device(config.Device == "cuda" ? DeviceType.CUDA : DeviceType.CPU);
        torch.set_num_threads(config.Threads > 0 ? config.Threads : Environment.ProcessorCount);
        NativeSetup.Apply();

        var data = DataSources.Load(config.Dataset, config.DataDir, artifacts, progress.Message);
        dataset = data with { Train = data.Train.Take(config.TrainLimit), Test = data.Test.Take(config.TestLimit) };
        if (resumeFrom?.Layers.FirstOrDefault(l => ParameterLoader.IsPreRenameAttention(RunManifest.TensorsOf(l.Value).Select(t => t.Tensor).ToList())) is { Key: { } oldGat })
            throw new ThermoException($"{runDirectory}: its {oldGat} was made before gat's attention vectors took PyTorch Geometric's names (its att_src is the centre's vector); it cannot be resumed, as its snapshots would change names midway; it can still be pruned and evaluated, or start a new run");
        if (resumeFrom is not null && resumeFrom.Dataset.Digest != dataset.Digest)
            throw new ThermoException($"{runDirectory}: the data differ from the run's ({dataset.Source}: {dataset.Digest}, {RunLayout.ManifestFile}: {resumeFrom.Dataset.Digest}); it cannot be resumed on them");
        var (native, check) = VerifyNativeStack(config, dataset, resumeFrom, runDirectory, progress);
        var graphs = ModelInputs.Graphs(config.Graph, data, artifacts, progress.Message);
        (trainX, trainY) = ToTensors(dataset.Train, graphs?.Train);
        (testX, testY) = ToTensors(dataset.Test, graphs?.Test);

        torch.manual_seed(config.Seed);
        var t = dataset.Train;
        model = ModelFactory.Create(config.Model, t.Channels, t.Height, t.Width, dataset.Classes, config.Widths, config.Dropout, config.Graph);
        // Kernels re-drawn on the CPU model before it moves, so the same seed gives the same start on any device.
        Initialisation.Apply(model, config.Init);
        model.to(device);
        // A run may start from another model's parameters (a pruned model being fine-tuned); only a
        // fresh run: a resumed one restores its own checkpoint.
        if (config.InitFrom is { } init && resumeFrom is null)
        {
            if (!File.Exists(init)) throw new SettingException(nameof(TrainConfig.InitFrom), "", $"{init} does not exist");
            ParameterLoader.Load(model, SnapshotReader.ReadFile(init), init);
        }
        var layers = model.named_parameters().Select(p => ParameterLoader.SplitName(p.name).Layer).Distinct().ToList();
        if (config.SnapshotLayers is { } keep)
            foreach (var name in keep.Where(n => !layers.Contains(n)))
                throw new SettingException(nameof(TrainConfig.SnapshotLayers), "", $"unknown layer '{name}' (layers of {config.Model}: {string.Join(", ", layers)})");
        weights = model.named_parameters().Where(p => ParameterLoader.SplitName(p.name).Tensor == "weight")
            .Select(p => (ParameterLoader.SplitName(p.name).Layer, p.parameter)).ToArray();
        if (config.Loss != "ce")
            foreach (var name in config.SmoothLayers!.Where(n => !weights.Any(w => w.Layer == n)))
                throw new SettingException(nameof(TrainConfig.SmoothLayers), "", $"unknown layer '{name}' (layers with weights: {string.Join(", ", weights.Select(w => w.Layer))})");
        kernels = weights.Where(w => w.Weight.dim() >= 2).Select(w => (Tensor)w.Weight).ToArray();
        smoothed = config.Loss == "ce" ? [] : weights.Where(w => config.SmoothLayers!.Contains(w.Layer)).Select(w => (Tensor)w.Weight).ToArray();
        optimizer = config.Optimizer == "sgd"
            ? torch.optim.SGD(model.parameters(), config.Lr, momentum: config.Momentum, weight_decay: config.WeightDecay)
            : torch.optim.Adam(model.parameters(), config.Lr, eps: config.AdamEps, weight_decay: config.WeightDecay);

        manifest = resumeFrom ?? new RunManifest
        {
            RunId = Path.GetFileName(Path.GetFullPath(runDirectory).TrimEnd(Path.DirectorySeparatorChar)),
            Config = config,
            Dataset = new DatasetInfo(dataset.Name, dataset.Source, dataset.Digest, dataset.Train.Count, dataset.Test.Count,
                t.Channels, t.Height, t.Width, dataset.Classes),
            Status = RunStatus.Running,
            Layers = model.named_parameters().GroupBy(p => ParameterLoader.SplitName(p.name).Layer)
                .ToDictionary(g => g.Key, g => string.Join("; ", g.Select(p => $"{ParameterLoader.SplitName(p.name).Tensor} [{string.Join("×", p.parameter.shape)}]"))),
            ParameterCount = model.parameters().Sum(p => p.numel()),
            Packages = PackageVersions(),
            GitCommit = GitCommit(),
            CreatedUtc = DateTimeOffset.UtcNow,
        };
        manifest = manifest with { Config = config, Native = native, SelfCheck = new SelfCheckSummary(check.Cases.ToArray(), check.WorstRelativeError, NumericsSelfCheck.Tolerance, check.Elapsed.TotalSeconds) };
    }

    /// <summary>
    /// Before any weight is trusted to this machine's kernels: the model's own forward and backward pass
    /// against float64 (docs/NATIVE.md), falling back to ATen's kernels when the chosen ones compute
    /// wrongly. A resumed run continues on the kernels it was trained on, where they still pass. Throws
    /// <see cref="NativeNumericsException"/> when no kernel set passes.
    /// </summary>
    static (NativeStack Native, SelfCheckReport Check) VerifyNativeStack(TrainConfig config, ImageDataset dataset, RunManifest? resumeFrom, string runDirectory, ITrainingProgress progress)
    {
        NativeSetup.Use(resumeFrom?.Native?.Convolutions is { } recordedKernels
            ? NativeSetup.Parse(recordedKernels, RunManifest.PathIn(runDirectory))
            : NativeSetup.Configured);
        var shape = dataset.Train;
        var cases = NumericsSelfCheck.ModelCases(config.Model, shape.Channels, shape.Height, shape.Width, dataset.Classes, config.Widths, config.BatchSize, config.Graph).ToList();
        var requested = NativeSetup.Convolutions;
        var (_, check, rejected) = NumericsSelfCheck.ChooseKernels(cases);
        var native = NativeSetup.Describe();
        if (rejected is not null)
            progress.Message($"warning: this machine computes wrongly with convolutions on {NativeSetup.Name(requested)} ({rejected.Failures[0]}); training on ATen's own kernels instead (slower; docs/NATIVE.md)");
        if (!check.Passed) throw new NativeNumericsException(check.Failures[0], check.Failures.Count, native);
        progress.Message($"native self-check passed: {string.Join(", ", check.Cases)} within {check.WorstRelativeError:G2} of float64 ({check.Elapsed.TotalSeconds:F1} s; convolutions on {native.Convolutions}, ATen {native.AtenCapability})");
        if (resumeFrom?.Native is { } recorded && !recorded.ComputesLike(native))
            progress.Message($"warning: resuming on another native stack than the run started on ({recorded.CpuModel}, {recorded.Convolutions}, {recorded.Threads} threads → {native.CpuModel}, {native.Convolutions}, {native.Threads} threads): its snapshots may differ from an uninterrupted run's");
        return (native, check);
    }

    /// <summary>Starts a fresh run in <paramref name="runDirectory"/> (which must hold no run).</summary>
    public static TrainingRun Start(TrainConfig config, string runDirectory, string artifacts, ITrainingProgress progress) =>
        Open(config, runDirectory, artifacts, progress, null);

    /// <summary>Reopens the run in <paramref name="runDirectory"/> at its last complete epoch.</summary>
    public static TrainingRun Resume(RunManifest manifest, TrainConfig config, string runDirectory, string artifacts, ITrainingProgress progress) =>
        Open(config, runDirectory, artifacts, progress, manifest);

    /// <summary>Takes the run's lock, then builds the training (restoring the checkpoint of a resumed one); a
    /// training that cannot start releases the lock and whatever it had built.</summary>
    static TrainingRun Open(TrainConfig config, string runDirectory, string artifacts, ITrainingProgress progress, RunManifest? resumeFrom)
    {
        config.Validate();
        var runLock = RunLock.Acquire(runDirectory);
        TrainingRun? trainer = null;
        try
        {
            trainer = new TrainingRun(config, runDirectory, artifacts, progress, resumeFrom, runLock);
            if (resumeFrom is not null) trainer.RestoreCheckpoint();
            return trainer;
        }
        catch
        {
            if (trainer is not null) trainer.Dispose();
            else runLock.Dispose();
            throw;
        }
    }

    (Tensor, Tensor) ToTensors(ImageSplit split, SuperpixelGraph[]? graphs) =>
        (ModelInputs.Of(split, graphs).to(device), tensor(split.Labels).to(device));

    static Dictionary<string, string> PackageVersions()
    {
        string Version(Type t) => t.Assembly.GetName().Version?.ToString() ?? "?";
        return new()
        {
            ["TorchSharp"] = Version(typeof(torch)),
            ["ParquetSharp"] = Version(typeof(ParquetSharp.ParquetFileWriter)),
            ["Apache.Arrow"] = Version(typeof(Apache.Arrow.RecordBatch)),
            ["Thermo"] = Version(typeof(TrainingRun)),
            [".NET"] = Environment.Version.ToString(),
        };
    }

    static string? GitCommit()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("git", "rev-parse HEAD") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 && output.Length >= 7 ? output : null;
        }
        catch (Exception) { return null; }
    }

    /// <summary>Trains from the last complete epoch to <see cref="TrainConfig.Epochs"/>; returns the final manifest.</summary>
    public RunManifest Run()
    {
        try
        {
            if (manifest.LastCompleteEpoch < 0) WriteInitialEpoch();
            var timer = Stopwatch.StartNew();
            int first = manifest.LastCompleteEpoch + 1;
            for (int epoch = first; epoch <= config.Epochs; epoch++)
            {
                var m = TrainEpoch(epoch);
                var perEpoch = timer.Elapsed / (epoch - first + 1);
                progress.EpochCompleted(m, config.Epochs, perEpoch * (config.Epochs - epoch));
            }
            manifest = manifest with { Status = RunStatus.Complete, Error = null };
            manifest.Save(runDirectory);
            return manifest;
        }
        catch (Exception e)
        {
            manifest = manifest with { Status = RunStatus.Failed, Error = e.Message };
            try { manifest.Save(runDirectory); } catch (IOException) { }
            throw;
        }
    }

    void WriteInitialEpoch()
    {
        Directory.CreateDirectory(runDirectory);
        var sw = Stopwatch.StartNew();
        WriteSnapshot(0, 0, stepFile: false);
        double snapshotSeconds = sw.Elapsed.TotalSeconds;
        sw.Restart();
        var (testLoss, testAccuracy) = Evaluate();
        var m = new MetricsRow(0, 0, double.NaN, double.NaN, testLoss, testAccuracy, config.LearningRateAt(1), config.BatchSize,
            0, sw.Elapsed.TotalSeconds, snapshotSeconds, double.NaN);
        metrics.Add(m);
        CommitEpoch(0);
        progress.EpochCompleted(m, config.Epochs, null);
    }

    MetricsRow TrainEpoch(int epoch)
    {
        double lr = config.LearningRateAt(epoch, step);
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
        double lrSum = 0;
        torch.manual_seed(config.Seed * 1_000_003L + epoch);
        int n = (int)trainX.shape[0];
        int batches = (n + config.BatchSize - 1) / config.BatchSize;
        bool stepSnapshots = epoch > config.Epochs - config.StepSnapshotEpochs;
        progress.EpochStarted(epoch, config.Epochs, batches);

        var sum = new double[weights.Length];
        var sumSquares = new double[weights.Length];
        double lossSum = 0;
        long correct = 0;
        var sw = Stopwatch.StartNew();
        double stepSnapshotSeconds = 0;
        model.train();
        using (var permutation = randperm(n, device: device))
        {
            for (int b = 0; b < batches; b++)
            {
                using var scope = NewDisposeScope();
                int start = b * config.BatchSize, count = Math.Min(config.BatchSize, n - start);
                var index = permutation.narrow(0, start, count);
                var x = trainX.index_select(0, index);
                var y = trainY.index_select(0, index);
                optimizer.zero_grad();
                Tensor logits;
                double batchLoss;
                if (smoothed.Length == 0)
                {
                    logits = model.forward(x);
                    var loss = nn.functional.cross_entropy(logits, y);
                    loss.backward();
                    batchLoss = loss.item<float>();
                }
                else
                    (batchLoss, logits) = SmoothedLoss.Backward(model, x, y, config.Loss, smoothed,
                        SmoothedLoss.Displacements(smoothed, config.Radius, config.Samples));
                if (config.L2 > 0) batchLoss += AddL2(kernels, config.L2);
                // s_I(b) for every layer in one native call and one copy out (docs/THEORY.md: gradient-noise layer temperature).
                var signal = stack(weights.Select(w => w.Weight.grad!.abs().mean()).ToArray()).cpu().data<float>().ToArray();
                for (int i = 0; i < signal.Length; i++) { sum[i] += signal[i]; sumSquares[i] += (double)signal[i] * signal[i]; }
                // The divergence guard, before the step: the loss and each layer's mean |gradient| are
                // already on the host, so checking them costs nothing. The run directory still ends at
                // the last complete epoch, so the run stays resumable.
                if (!double.IsFinite(batchLoss)) throw Diverged(epoch, b, batches, $"the loss is {batchLoss}");
                if (Array.FindIndex(signal, s => !float.IsFinite(s)) is var bad and >= 0)
                    throw Diverged(epoch, b, batches, $"{weights[bad].Layer}'s mean |gradient| is {signal[bad]}");
                if (config.LrDecay > 0)
                {
                    lr = config.LearningRateAt(epoch, step);
                    foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
                }
                lrSum += lr;
                optimizer.step();
                step++;
                lossSum += batchLoss * count;
                correct += logits.argmax(1).eq(y).sum().item<long>();
                if (stepSnapshots)
                {
                    var ssw = Stopwatch.StartNew();
                    WriteSnapshot(epoch, step, stepFile: true);
                    stepSnapshotSeconds += ssw.Elapsed.TotalSeconds;
                }
                progress.BatchCompleted(b + 1, batchLoss);
            }
        }
        double trainSeconds = sw.Elapsed.TotalSeconds - stepSnapshotSeconds;
        sw.Restart();
        var (testLoss, testAccuracy) = Evaluate();
        double evalSeconds = sw.Elapsed.TotalSeconds;
        sw.Restart();
        if (config.SnapshotsEpoch(epoch)) WriteSnapshot(epoch, step, stepFile: false);
        double snapshotSeconds = sw.Elapsed.TotalSeconds + stepSnapshotSeconds;

        for (int i = 0; i < weights.Length; i++)
        {
            double mean = sum[i] / batches;
            double variance = batches > 1 ? Math.Max(0, (sumSquares[i] - batches * mean * mean) / (batches - 1)) : 0;
            gradNoise.Add(new GradientNoiseRow(epoch, weights[i].Layer, mean, Math.Sqrt(variance), batches));
        }
        // With a time-based decay the rate changes every step: the epoch's row holds the mean over its steps
        // (without one, the epoch's rate itself, bit for bit).
        var m = new MetricsRow(epoch, step, lossSum / n, (double)correct / n, testLoss, testAccuracy, config.LrDecay > 0 ? lrSum / batches : lr, config.BatchSize,
            trainSeconds, evalSeconds, snapshotSeconds, n / trainSeconds);
        metrics.Add(m);
        CommitEpoch(epoch);
        return m;
    }

    /// <summary>
    /// Adds the Keras-style L2 term's gradient 2·l2·w to each kernel's .grad (the same as back-propagating
    /// l2·Σ‖w‖² through the loss, for every loss) and returns the term's value, which the loss reports.
    /// </summary>
    internal static double AddL2(IReadOnlyList<Tensor> kernels, double l2)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var w in kernels) w.grad!.add_(w, alpha: 2 * l2);
        // One copy to the host per batch for the reported value, not one per kernel.
        return l2 * stack(kernels.Select(w => w.square().sum()).ToArray()).sum().item<float>();
    }

    /// <summary>The error of a run whose loss or weights stopped being finite: where, and which tensor first.</summary>
    ThermoException Diverged(int epoch, int batch, int batches, string what)
    {
        var culprit = model.named_parameters()
            .Select(p => (p.name, Weight: !p.parameter.isfinite().all().item<bool>(), Gradient: p.parameter.grad is { } g && !g.isfinite().all().item<bool>()))
            .FirstOrDefault(p => p.Weight || p.Gradient);
        var tensor = culprit.name is null ? "every weight and gradient is still finite" : $"{culprit.name} holds a non-finite {(culprit.Weight ? "weight" : "gradient")}";
        return new ThermoException($"training diverged at epoch {epoch}, step {step + 1} (batch {batch + 1} of {batches}): {what}; {tensor}. " +
            $"The run stays resumable from epoch {manifest.LastCompleteEpoch} ({runDirectory}); if the native self-check (the doctor verb) fails on this machine, its native kernels are at fault, else try a smaller learning rate");
    }

    /// <summary>Test-set loss (mean cross-entropy) and accuracy of the current model, in eval mode.</summary>
    public (double Loss, double Accuracy) Evaluate() => TestEvaluation.TestMetrics(model, testX, testY);

    /// <summary>Every parameter and buffer of the model (or only the chosen layers) as a snapshot.</summary>
    public Snapshot Capture(int epoch, long atStep)
    {
        var keep = config.SnapshotLayers;
        var tensors = new List<TensorSnapshot>();
        using var scope = NewDisposeScope(); // the detached and converted copies are freed here
        void Add(string name, Tensor t)
        {
            var (layer, tensorName) = ParameterLoader.SplitName(name);
            if (keep is not null && !keep.Contains(layer)) return;
            var cpuValues = t.detach().to(ScalarType.Float32).cpu().contiguous();
            tensors.Add(new TensorSnapshot(layer, tensorName, t.shape.Select(d => (int)d).ToArray(), cpuValues.data<float>().ToArray()));
        }
        foreach (var (name, p) in model.named_parameters()) Add(name, p);
        foreach (var (name, b) in model.named_buffers()) Add(name, b);
        return new Snapshot(epoch, atStep, tensors.ToArray());
    }

    void WriteSnapshot(int epoch, long atStep, bool stepFile)
    {
        var snapshot = Capture(epoch, atStep);
        foreach (var t in snapshot.Tensors)
            foreach (var v in t.Values)
                if (!float.IsFinite(v))
                    throw new ThermoException($"training diverged: {t.Layer}.{t.Tensor} holds {v} at epoch {epoch} (step {atStep}). " +
                        $"The run stays resumable from epoch {manifest.LastCompleteEpoch} ({runDirectory}); if the native self-check (the doctor verb) fails on this machine, its native kernels are at fault, else try a smaller learning rate");
        var dir = stepFile ? RunLayout.StepSnapshots(runDirectory) : RunLayout.Snapshots(runDirectory);
        var name = stepFile ? SnapshotSchema.stepFileName(format, epoch, atStep) : SnapshotSchema.fileName(format, epoch);
        Directory.CreateDirectory(dir);
        SnapshotWriter.write(format, Path.Combine(dir, name), snapshot);
    }

    /// <summary>Writes the epoch's tables and checkpoint, then the manifest naming the epoch complete.</summary>
    void CommitEpoch(int epoch)
    {
        MetricsTable.Write(RunLayout.Metrics(runDirectory), metrics.ToArray());
        GradNoiseTable.Write(RunLayout.GradNoise(runDirectory), gradNoise.ToArray());
        var checkpoint = RunLayout.CheckpointName(epoch);
        // Filled in a hidden sibling (checkpoint/.epoch=NNNNN.PID.tmp) that then takes the place of
        // any old one; a resume removes what an interrupted swap left (see RestoreCheckpoint).
        AtomicFiles.ReplaceDirectory(Path.Combine(runDirectory, checkpoint), temp =>
        {
            model.save(Path.Combine(temp, "model.bin"));
            optimizer.save_state_dict(Path.Combine(temp, "optimizer.bin"));
        });
        var previous = manifest.Checkpoint;
        manifest = manifest with { LastCompleteEpoch = epoch, LastStep = step, Checkpoint = checkpoint, Status = RunStatus.Running };
        manifest.Save(runDirectory);
        if (previous is not null && previous != checkpoint && Directory.Exists(Path.Combine(runDirectory, previous)))
            Directory.Delete(Path.Combine(runDirectory, previous), true);
    }

    void RestoreCheckpoint()
    {
        var dir = Path.Combine(runDirectory, manifest.Checkpoint ?? throw new ThermoException($"{RunManifest.PathIn(runDirectory)}: names no checkpoint to resume from"));
        foreach (var file in new[] { "model.bin", "optimizer.bin" })
            if (!File.Exists(Path.Combine(dir, file))) throw new ThermoException($"{Path.Combine(dir, file)}: checkpoint file is missing");
        model.load(Path.Combine(dir, "model.bin"));
        optimizer.load_state_dict(Path.Combine(dir, "optimizer.bin"));
        step = manifest.LastStep;
        int last = manifest.LastCompleteEpoch;
        metrics.AddRange(ReadMetrics(RunLayout.Metrics(runDirectory)).Where(m => m.Epoch <= last));
        gradNoise.AddRange(ReadGradNoise(RunLayout.GradNoise(runDirectory)).Where(g => g.Epoch <= last));
        // Files of epochs after the last complete one were written by the interrupted process before it
        // could commit them; they are rewritten as training continues.
        foreach (var f in Directory.EnumerateFiles(runDirectory, "*.tmp", SearchOption.AllDirectories)) File.Delete(f);
        // Checkpoint directories of an interrupted swap: the temporary one being filled (*.tmp) and an
        // old one moved aside (*.old).
        foreach (var d in Directory.EnumerateDirectories(RunLayout.Checkpoints(runDirectory)).Where(d => d.EndsWith(".tmp") || d.EndsWith(".old")))
            Directory.Delete(d, true);
        progress.Message($"resuming {manifest.RunId} after epoch {last} (step {step})");
    }

    /// <summary>Reads metrics.parquet (<see cref="MetricsTable"/>).</summary>
    public static List<MetricsRow> ReadMetrics(string path) => [.. MetricsTable.Read(path)];

    /// <summary>Reads gradnoise.parquet (<see cref="GradNoiseTable"/>).</summary>
    public static List<GradientNoiseRow> ReadGradNoise(string path) => [.. GradNoiseTable.Read(path)];

    public void Dispose()
    {
        runLock.Dispose();
        optimizer.Dispose();
        model.Dispose();
        trainX.Dispose(); trainY.Dispose(); testX.Dispose(); testY.Dispose();
    }
}
