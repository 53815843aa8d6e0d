using Thermo.Analysis.Run;
using Thermo.Trainer;
using System.CommandLine;
using System.Globalization;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Verbs;

/// <summary><c>thermo train</c>: options, run-directory rules (fresh, --resume, --force), and the run.</summary>
public static class TrainVerb
{
    static Option<T> Opt<T>(string name, string description, T defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    static Option<T?> Opt<T>(string name, string description) => new(name) { Description = description };

    public static Command Build()
    {
        var defaults = new TrainConfig();
        var model = Opt("--model", "Model: fourconv (pruning paper), lenet (batch norm), mlp2, mlp3 (784-wide), cifarnet, stlnet (5 conv + 3 linear), gcn, gat (superpixel graphs)", defaults.Model);
        var dataset = Opt("--dataset", "Data set: mnist (MNIST's 60,000 / 10,000 split), mnist-10k (10,000 MNIST digits: 8,004 / 1,996), fashion-mnist, cifar10", defaults.Dataset);
        var dataDir = Opt<string>("--data-dir", "Directory with the data set's own files (IDX, raw or .gz; CIFAR-10 binary batches)");
        var epochs = Opt("--epochs", "Number of training epochs", defaults.Epochs);
        var seed = Opt("--seed", "Seed of initialisation, shuffling and dropout", defaults.Seed);
        var optimizer = Opt("--optimizer", "adam or sgd (with --momentum)", defaults.Optimizer);
        var lr = Opt("--lr", "Learning rate", defaults.Lr);
        var momentum = Opt("--momentum", "SGD momentum", defaults.Momentum);
        var weightDecay = Opt("--weight-decay", "Torch weight decay: adds W·w to every parameter's gradient, biases included (0 to switch off)", defaults.WeightDecay);
        var l2 = Opt("--l2", "Keras-style L2: adds W·Σ‖kernel‖² of the conv and linear kernels (not biases) to the loss", defaults.L2);
        var dropout = Opt("--dropout", "Dropout probability", defaults.Dropout);
        var batchSize = Opt("--batch-size", "Minibatch size", defaults.BatchSize);
        var lrStep = Opt("--lr-step", "Step schedule: multiply the lr by --lr-gamma every N epochs (0 = constant)", defaults.LrStep);
        var lrGamma = Opt("--lr-gamma", "Step schedule factor", defaults.LrGamma);
        var lrDecay = Opt("--lr-decay", "Keras's time-based decay: optimiser step s (counted from 0 over the run) uses lr / (1 + D·s), on top of the step schedule (0 = off)", defaults.LrDecay);
        var adamEps = Opt("--adam-eps", "Adam's ε (torch's default 1e-8; Keras's 1e-7)", defaults.AdamEps);
        var widths = Opt<string>("--widths", "Conv widths, comma-separated (fourconv: 12,24,48,48)");
        var trainLimit = Opt<int?>("--train-limit", "Use only the first N training images");
        var testLimit = Opt<int?>("--test-limit", "Use only the first N test images");
        var format = Opt("--format", "Snapshot format: parquet or arrow", defaults.Format);
        var snapshotLayers = Opt<string>("--snapshot-layers", "Keep only these layers in snapshots (comma-separated)");
        var snapshotEvery = Opt("--snapshot-every", "Write a snapshot every N epochs (epoch 0 and the last always)", defaults.SnapshotEvery);
        var stepSnapshots = Opt("--step-snapshots", "Also snapshot after every optimiser step inside the last K epochs", defaults.StepSnapshotEpochs);
        var threads = Opt("--threads", "CPU threads for torch (0 = all cores)", defaults.Threads);
        var device = Opt("--device", "cpu or cuda", defaults.Device);
        var init = Opt("--init", "Kernel initialisation: default (each layer's own), kaiming (He normal, fan-in, ReLU) or xavier (Glorot uniform); kaiming and xavier zero those layers' biases", defaults.Init);
        var graph = Opt<string>("--graph", "gcn and gat: the graph each image is seen as, slic (its own SLIC superpixels, about 75; the default) or tiles (one fixed tiling into 4×4-pixel tiles)");
        var initFrom = Opt<string>("--init-from", "Start from the parameters of this snapshot file (e.g. a pruned model) instead of a random initialisation");
        var loss = Opt("--loss", "ce (cross-entropy), or the partial local entropy losses pla, plea", defaults.Loss);
        var smoothLayers = Opt<string>("--smooth-layers", "With pla/plea: layers whose weights are smoothed, comma-separated (e.g. fc1,fc2)");
        var radius = Opt("--radius", "With pla/plea: half-side R of the hyper-cube of displacements", defaults.Radius);
        var samples = Opt("--samples", "With pla/plea: displaced copies y per minibatch", defaults.Samples);
        var configFile = Opt<string>("--config", "Take the whole configuration from this JSON file (a run.json, or its \"config\" object alone); other flags must not be given");
        var output = Opt<string>("--out", "Run directory (default: artifacts/runs/<run-id>)");
        var resume = Opt<string>("--resume", "Continue the run in this directory from its last complete epoch");
        var force = Opt("--force", "Replace a run already in --out", false);
        // Expanded before parsing (TrainPresets); declared here for --help and so that it parses.
        var preset = Opt<string>("--preset", "A paper's protocol as a set of flags (flags given override it): " + string.Join(", ", TrainPresets.All.Select(p => $"{p.Key} ({p.Value.Description}: {string.Join(' ', p.Value.Flags)})")));
        var resumable = Opt("--resumable", "For schedulers (a task may run twice): if --out holds this configuration's run, finish it — nothing to do when complete, resume from its last complete epoch otherwise; a run of another configuration is an error", false);

        var command = new Command("train", "Train a model, writing a snapshot of every parameter each epoch")
        {
            model, dataset, dataDir, epochs, seed, optimizer, lr, momentum, weightDecay, l2, dropout, batchSize, lrStep, lrGamma, lrDecay, adamEps,
            widths, trainLimit, testLimit, format, snapshotLayers, snapshotEvery, stepSnapshots, threads, device, init, graph, initFrom,
            loss, smoothLayers, radius, samples, configFile, output, resume, force, resumable, preset,
        };

        command.SetAction(parse =>
        {
            var config = new TrainConfig
            {
                Model = parse.GetValue(model)!, Dataset = parse.GetValue(dataset)!, DataDir = parse.GetValue(dataDir),
                Epochs = parse.GetValue(epochs), Seed = parse.GetValue(seed), Optimizer = parse.GetValue(optimizer)!,
                Lr = parse.GetValue(lr), Momentum = parse.GetValue(momentum), WeightDecay = parse.GetValue(weightDecay), L2 = parse.GetValue(l2),
                Dropout = parse.GetValue(dropout), BatchSize = parse.GetValue(batchSize), LrStep = parse.GetValue(lrStep),
                LrGamma = parse.GetValue(lrGamma), LrDecay = parse.GetValue(lrDecay), AdamEps = parse.GetValue(adamEps), Widths = Flags.Ints("--widths", parse.GetValue(widths)),
                TrainLimit = parse.GetValue(trainLimit), TestLimit = parse.GetValue(testLimit), Format = parse.GetValue(format)!,
                SnapshotLayers = Flags.List(parse.GetValue(snapshotLayers)), SnapshotEvery = parse.GetValue(snapshotEvery),
                StepSnapshotEpochs = parse.GetValue(stepSnapshots), Threads = parse.GetValue(threads), Device = parse.GetValue(device)!, Init = parse.GetValue(init)!,
                Graph = parse.GetValue(graph), InitFrom = parse.GetValue(initFrom), Loss = parse.GetValue(loss)!, SmoothLayers = Flags.List(parse.GetValue(smoothLayers)),
                Radius = parse.GetValue(radius), Samples = parse.GetValue(samples),
            };
            if (parse.GetValue(configFile) is { } file)
            {
                var given = command.Options.Where(o => o.Name is not ("--config" or "--out" or "--force" or "--resumable") && parse.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
                if (given.Count > 0) throw new ThermoException($"--config: takes the whole configuration; {string.Join(", ", given)} cannot be given with it");
                config = LoadConfig(file);
            }
            var artifacts = Program.ArtifactsDirectory();
            using var progress = new ConsoleProgress();
            var resumeDir = parse.GetValue(resume);
            if (parse.GetValue(resumable) && (resumeDir is not null || parse.GetValue(force)))
                throw new ThermoException("--resumable: cannot be given with --resume or --force");
            var mode = resumeDir is not null ? RunDirectoryMode.Resume
                : parse.GetValue(resumable) ? RunDirectoryMode.Resumable
                : parse.GetValue(force) ? RunDirectoryMode.Replace : RunDirectoryMode.Fresh;
            if (mode == RunDirectoryMode.Resumable && parse.GetValue(output) is null)
                throw new ThermoException("--resumable: needs --out (the run directory a repeated task finds again)");
            var runDir = resumeDir ?? parse.GetValue(output) ?? Path.Combine(artifacts, "runs",
                $"{config.Model}-{config.Dataset}-s{config.Seed}-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
            // One training per run directory, held from the first look at the directory to the end.
            using var runLock = RunLock.Acquire(runDir);
            var plan = RunDirectory.Prepare(config, runDir, mode, parse.GetResult(epochs) is { Implicit: false } ? config.Epochs : null);
            if (mode == RunDirectoryMode.Resume)
                foreach (var (flag, differs) in ExplicitDifferences(parse, command, config, plan.Existing!.Config))
                    if (differs) throw new ThermoException($"--resume: {flag} differs from the run's configuration in {RunManifest.PathIn(runDir)}");
            var trainer = RunDirectory.Open(plan, runDir, artifacts, progress);
            if (trainer is null)
            {
                progress.Message($"complete already: {plan.Existing!.LastCompleteEpoch} epochs in {runDir}");
                WriteResult(runDir, plan.Existing);
                return ExitCodes.Ok;
            }
            using (trainer)
            {
                progress.Message($"run directory: {runDir} ({trainer.Manifest.ParameterCount:N0} parameters, {trainer.Manifest.Dataset.TrainCount} train / {trainer.Manifest.Dataset.TestCount} test images)");
                var final = trainer.Run();
                progress.Message($"complete: {final.LastCompleteEpoch} epochs in {runDir}");
                WriteResult(runDir, final);
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    static void WriteResult(string runDir, RunManifest final)
    {
        var last = TrainingRun.ReadMetrics(RunLayout.Metrics(runDir)).Last();
        CliOutput.Result(new
        {
            run = runDir, epochs = final.LastCompleteEpoch, parameters = final.ParameterCount,
            test_accuracy = last.TestAccuracy, test_loss = last.TestLoss, train_accuracy = last.TrainAccuracy, train_loss = last.TrainLoss,
        }, () => Console.WriteLine(runDir));
    }

    /// <summary>A configuration from a JSON file: a run.json (its "config") or a bare configuration.</summary>
    internal static TrainConfig LoadConfig(string file)
    {
        if (!File.Exists(file)) throw new ThermoException($"--config: {file} does not exist");
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(file));
            bool runJson = document.RootElement.TryGetProperty("config", out var inner);
            var config = System.Text.Json.JsonSerializer.Deserialize<TrainConfig>(runJson ? inner : document.RootElement, RunManifest.Json)
                ?? throw new ThermoException($"--config: {file} holds no configuration");
            var digest = runJson && document.RootElement.TryGetProperty("dataset", out var data) && data.TryGetProperty("digest", out var d) ? d.GetString() ?? "" : "";
            return runJson ? config.AsRecordedByRun(digest) : config;
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ThermoException($"--config: {file} is not a valid configuration ({e.Message})");
        }
    }

    /// <summary>For each option given explicitly on a resume, whether its value differs from the run's.</summary>
    static IEnumerable<(string Flag, bool Differs)> ExplicitDifferences(ParseResult parse, Command command, TrainConfig given, TrainConfig run)
    {
        var compared = new Dictionary<string, Func<TrainConfig, object?>>
        {
            ["--model"] = c => c.Model, ["--dataset"] = c => c.Dataset, ["--data-dir"] = c => c.DataDir, ["--seed"] = c => c.Seed,
            ["--optimizer"] = c => c.Optimizer, ["--lr"] = c => c.Lr, ["--momentum"] = c => c.Momentum,
            ["--weight-decay"] = c => c.WeightDecay, ["--l2"] = c => c.L2, ["--dropout"] = c => c.Dropout, ["--batch-size"] = c => c.BatchSize,
            ["--lr-step"] = c => c.LrStep, ["--lr-gamma"] = c => c.LrGamma, ["--lr-decay"] = c => c.LrDecay, ["--adam-eps"] = c => c.AdamEps, ["--widths"] = c => c.Widths is null ? null : string.Join(",", c.Widths),
            ["--train-limit"] = c => c.TrainLimit, ["--test-limit"] = c => c.TestLimit, ["--format"] = c => c.Format,
            ["--snapshot-layers"] = c => c.SnapshotLayers is null ? null : string.Join(",", c.SnapshotLayers),
            ["--snapshot-every"] = c => c.SnapshotEvery, ["--step-snapshots"] = c => c.StepSnapshotEpochs,
            ["--threads"] = c => c.Threads, ["--device"] = c => c.Device, ["--init"] = c => c.Init, ["--graph"] = c => c.Graph, ["--init-from"] = c => c.InitFrom,
            ["--loss"] = c => c.Loss, ["--smooth-layers"] = c => c.SmoothLayers is null ? null : string.Join(",", c.SmoothLayers),
            ["--radius"] = c => c.Radius, ["--samples"] = c => c.Samples,
        };
        foreach (var option in command.Options)
            if (compared.TryGetValue(option.Name, out var get) && parse.GetResult(option) is { Implicit: false })
                yield return (option.Name, !Equals(get(given), get(run)));
    }
}
