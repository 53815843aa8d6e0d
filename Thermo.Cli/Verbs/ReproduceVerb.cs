using Thermo.Trainer;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Pipeline.Pruning;
using Thermo.Pipeline.Cluster;
using Thermo.Pipeline.Protocols;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo reproduce pruning-paper</c>: the pruning paper's protocol end to end — R seeds trained,
/// each analysed over its last N epochs, pruned by every criterion, tabulated as Tables 2–3. Resumable:
/// complete runs with the same configuration are reused, unfinished ones resumed.
/// </summary>
public static class ReproduceVerb
{
    public static Command Build()
    {
        var experiment = new Argument<string>("EXPERIMENT") { Description = "The experiment to reproduce: pruning-paper" };
        var dataset = new Option<string>("--dataset") { Description = "mnist (default data) or fashion-mnist", DefaultValueFactory = _ => "mnist" };
        var dataDir = new Option<string>("--data-dir") { Description = "Directory with the data set's own files (IDX)" };
        var runs = new Option<int>("--runs") { Description = "Independent trainings (seeds 1..R); --full: 10", DefaultValueFactory = _ => 5 };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per training; --full: 200", DefaultValueFactory = _ => 20 };
        var l2 = new Option<double>("--l2") { Description = "The paper's weight decay as Keras applies it: L2 of the conv and linear kernels added to the loss (0: none); --full does both 1e-3 and 0", DefaultValueFactory = _ => 1e-3 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "Torch's weight decay on every parameter, biases included, in every condition (not the paper's)", DefaultValueFactory = _ => 0 };
        var full = new Option<bool>("--full") { Description = "The paper's protocol: 200 epochs, last 150 as equilibrium, 10 runs, with and without L2 (hours on 2 cores)" };
        var trainLimit = new Option<int?>("--train-limit") { Description = "Use only the first N training images" };
        var testLimit = new Option<int?>("--test-limit") { Description = "Use only the first N test images" };
        var threads = new Option<int>("--threads") { Description = "CPU threads for torch (0 = all cores)", DefaultValueFactory = _ => 0 };
        var curves = new Option<string>("--curves") { Description = "Prune-fraction curves: none, layer or all", DefaultValueFactory = _ => "layer" };
        var draws = new Option<int>("--draws") { Description = "Random orders averaged per run", DefaultValueFactory = _ => 5 };
        var output = new Option<string>("--out") { Description = "Reproduction directory (default: artifacts/reproductions/pruning-paper-<dataset>-e<E>-n<N>-r<R>)" };
        var ledger = new Option<string>("--ledger") { Description = "Keep each finished run's compact part (no per-epoch snapshots) in this directory, train only what it lacks, and tabulate from it alone" };
        var noTrain = new Option<bool>("--no-train") { Description = "With --ledger: train nothing, tabulate the runs the ledger holds" };
        var command = new Command("reproduce", "Reproduce a paper's experiment end to end: train R seeds, analyse, prune, tabulate")
        {
            experiment, dataset, dataDir, runs, epochs, l2, weightDecay, full, trainLimit, testLimit, threads, curves, draws, output, ledger, noTrain,
        };
        var window = new WindowFlag(command, "Equilibrium window, last:N (the last N epochs); --full: last:150", "last:10", "--equilibrium", legacyIsCount: true);
        var scheduling = new SchedulerFlags(command);
        command.SetAction(parse =>
        {
            if (parse.GetValue(experiment) != "pruning-paper")
                throw new ThermoException($"reproduce: unknown experiment '{parse.GetValue(experiment)}' (known: pruning-paper)");
            bool isFull = parse.GetValue(full);
            bool Given(Option o) => parse.GetResult(o) is { Implicit: false };
            var protocol = new PruningPaperReproduction.Protocol(
                parse.GetValue(dataset)!, parse.GetValue(dataDir),
                isFull && !Given(runs) ? 10 : parse.GetValue(runs),
                isFull && !Given(epochs) ? 200 : parse.GetValue(epochs),
                isFull && !window.Given(parse) ? 150 : window.LastEpochs(parse)!.Value,
                isFull && !Given(l2) ? [1e-3, 0] : [parse.GetValue(l2)],
                parse.GetValue(weightDecay),
                parse.GetValue(trainLimit), parse.GetValue(testLimit), parse.GetValue(threads),
                new PruneSettings { Curves = parse.GetValue(curves)!, RandomDraws = parse.GetValue(draws) },
                parse.GetValue(ledger), !parse.GetValue(noTrain));
            if (protocol.Dataset is not ("mnist" or "fashion-mnist")) throw new ThermoException($"--dataset: the pruning paper's CNN runs on mnist or fashion-mnist, not '{protocol.Dataset}'");
            if (protocol.Runs < 2) throw new ThermoException($"--runs: need at least 2 runs for a standard deviation, got {protocol.Runs}");
            if (protocol.Epochs < 2) throw new ThermoException($"--epochs: must be at least 2, got {protocol.Epochs}");
            if (protocol.Equilibrium < 1 || protocol.Equilibrium > protocol.Epochs)
                throw new ThermoException($"--window: last:N must have N in 1..{protocol.Epochs} (--epochs), got last:{protocol.Equilibrium}");
            if (protocol.L2s.Any(v => !(v >= 0) || double.IsInfinity(v))) throw new ThermoException($"--l2: must be non-negative, got {parse.GetValue(l2)}");
            if (!(protocol.WeightDecay >= 0) || double.IsInfinity(protocol.WeightDecay)) throw new ThermoException($"--weight-decay: must be non-negative, got {protocol.WeightDecay}");
            if (protocol.Prune.Curves is not ("none" or "layer" or "all")) throw new ThermoException($"--curves: '{protocol.Prune.Curves}' is not none, layer or all");
            if (protocol.Prune.RandomDraws < 1) throw new ThermoException("--draws: must be positive");
            if (!protocol.TrainMissing && protocol.Ledger is null) throw new ThermoException("--no-train: needs --ledger (the runs to tabulate)");
            var artifacts = Program.ArtifactsDirectory();
            var dir = parse.GetValue(output) ?? Path.Combine(artifacts, "reproductions",
                $"pruning-paper-{protocol.Dataset}-e{protocol.Epochs}-n{protocol.Equilibrium}-r{protocol.Runs}{(protocol.TrainLimit is { } t ? $"-t{t}" : "")}");
            if (scheduling.Scheduler(parse) == Scheduler.Slurm)
            {
                if (Given(threads)) throw new ThermoException("--threads: with --scheduler slurm, --cpus-per-task sets each training's threads");
                if (!protocol.TrainMissing) throw new ThermoException("--no-train: trains nothing, so there is nothing to submit; drop --scheduler slurm");
                var slurm = scheduling.Settings(parse);
                var submission = PruningPaperReproduction.Submit(protocol with { Threads = slurm.CpusPerTask }, dir, artifacts, SchedulerFlags.ThermoCommand(),
                    SchedulerFlags.FinishArguments(Program.Arguments, slurm.CpusPerTask), slurm,
                    a => SlurmJobs.RunCommand("sbatch", a), a => SlurmJobs.RunCommand("squeue", a), new ConsoleProgress());
                SchedulerFlags.Report(submission, dir);
                return ExitCodes.Ok;
            }
            var tables = PruningPaperReproduction.Run(protocol, dir, artifacts, new ConsoleProgress());
            foreach (var (condition, table) in tables)
                if (!CliOutput.Json) Console.WriteLine($"{condition}:\n{Aggregation.Text(table)}");
            CliOutput.Result(new
            {
                directory = protocol.Ledger ?? dir, runs = protocol.Runs, epochs = protocol.Epochs, equilibrium = protocol.Equilibrium,
                conditions = tables.Select(t => new { condition = t.Key, table = PruneVerb.TableJson(t.Value) }),
            }, () => { });
            return ExitCodes.Ok;
        });
        return command;
    }
}
