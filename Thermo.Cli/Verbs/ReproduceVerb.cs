using Thermo.Trainer;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Thermo.Pipeline.Pruning;
using Thermo.Pipeline.Cluster;
using Thermo.Pipeline.Protocols;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo reproduce pruning-paper</c>: the pruning paper's protocol end to end — R seeds trained,
/// each analysed over its last N epochs, pruned by every criterion, tabulated as Tables 2–3.
/// <c>thermo reproduce partial-entropy</c>: the partial-entropy paper's grid of smoothed losses against
/// plain cross-entropy. Both are resumable: complete runs with the same configuration are reused,
/// unfinished ones resumed.
/// </summary>
public static class ReproduceVerb
{
    /// <summary>A number for --json: null where no value could be computed (NaN), as JSON has no NaN.</summary>
    static double? Finite(double? value) => value is { } v && double.IsFinite(v) ? v : null;

    public static Command Build()
    {
        // The flags' defaults shown by --help are the protocols' own (without --full).
        var pp = PruningPaperReproduction.Defaults(full: false);
        var pe = PartialEntropyReproduction.Defaults(full: false);
        var experiment = new Argument<string>("EXPERIMENT") { Description = "The experiment to reproduce: pruning-paper or partial-entropy" };
        var dataset = new Option<string>("--dataset") { Description = "mnist (MNIST's 60,000 / 10,000), mnist-10k (10,000 MNIST digits: 8,004 / 1,996) or fashion-mnist (default: mnist-10k for pruning-paper, fashion-mnist for partial-entropy)" };
        var dataDir = new Option<string>("--data-dir") { Description = "Directory with the data set's own files (IDX)" };
        var runs = new Option<int?>("--runs") { Description = "Independent trainings (seeds 1..R) per condition or grid point (default: 5 for pruning-paper, 3 for partial-entropy; --full: 10 and 3)" };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs per training (default: 20 for pruning-paper and for partial-entropy; --full: 200 and 120)" };
        var l2 = new Option<double>("--l2") { Description = "The paper's weight decay as Keras applies it: L2 of the conv and linear kernels added to the loss (0: none); --full does both 1e-3 and 0", DefaultValueFactory = _ => PruningPaperReproduction.PaperL2 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "Torch's weight decay on every parameter, biases included, in every condition (not the paper's)", DefaultValueFactory = _ => pp.WeightDecay };
        var lrDecay = new Option<double>("--lr-decay") { Description = "pruning-paper: Keras's time-based learning-rate decay per optimiser step, lr / (1 + D·step) (the other reading of the paper's \"decay\"; 0: none)", DefaultValueFactory = _ => pp.LrDecay };
        var adamEps = new Option<double>("--adam-eps") { Description = "pruning-paper: Adam's ε (torch's 1e-8; Keras's default 1e-7)", DefaultValueFactory = _ => pp.AdamEps };
        var init = new Option<string>("--init") { Description = "pruning-paper: kernel initialisation, default, kaiming or xavier (Keras's Glorot uniform, zero biases)", DefaultValueFactory = _ => pp.Init };
        var full = new Option<bool>("--full") { Description = "The paper's protocol. pruning-paper: 200 epochs, last 150 as equilibrium, 10 runs, with and without L2 (hours on 2 cores); partial-entropy: 120 epochs at lr 1e-4 on all 60,000 images, 3 seeds (days on 2 cores)" };
        var trainLimit = new Option<int?>("--train-limit") { Description = "Use only the first N training images (partial-entropy's default: 20000)" };
        var testLimit = new Option<int?>("--test-limit") { Description = "Use only the first N test images" };
        var threads = new Option<int>("--threads") { Description = "CPU threads for torch (0 = all cores)", DefaultValueFactory = _ => 0 };
        var curves = new Option<string>("--curves") { Description = "Prune-fraction curves: none, layer or all", DefaultValueFactory = _ => "layer" };
        var draws = new Option<int>("--draws") { Description = "Random orders averaged per run", DefaultValueFactory = _ => pp.Prune.RandomDraws };
        var output = new Option<string>("--out") { Description = "Reproduction directory (default: artifacts/reproductions/pruning-paper-<dataset>-e<E>-n<N>-r<R>, or partial-entropy-<dataset>-e<E>-r<R>-t<N>)" };
        var ledger = new Option<string>("--ledger") { Description = "Keep each finished run's compact part (no per-epoch snapshots) in this directory, train only what it lacks, and tabulate from it alone" };
        var noTrain = new Option<bool>("--no-train") { Description = "Train nothing: tabulate the runs the ledger holds (partial-entropy: or the complete runs in --out)" };
        var lr = new Option<double?>("--lr") { Description = "partial-entropy: SGD learning rate (default 2e-3: with 20,000 images for 20 epochs, about the paper's η × steps; --full: the paper's 1e-4)" };
        var losses = new Option<string>("--losses") { Description = "partial-entropy: smoothed losses, comma-separated (pla, plea)", DefaultValueFactory = _ => string.Join(",", pe.Losses) };
        var smoothings = new Option<string>("--smoothings") { Description = "partial-entropy: choices of smoothed layers, comma-separated, layers of one choice joined by + (e.g. fc1,fc2,fc1+fc2)", DefaultValueFactory = _ => string.Join(",", pe.Smoothings.Select(c => string.Join("+", c))) };
        var radii = new Option<string>("--radii") { Description = "partial-entropy: half-sides R of the smoothing hyper-cube, comma-separated", DefaultValueFactory = _ => string.Join(",", pe.Radii.Select(r => r.ToString(CultureInfo.InvariantCulture))) };
        var samples = new Option<int>("--samples") { Description = "partial-entropy: displaced copies y per minibatch", DefaultValueFactory = _ => pe.Samples };
        var jobs = new Option<int>("--jobs") { Description = "partial-entropy: trainings run at once, as separate processes (give --threads too: each uses that many)", DefaultValueFactory = _ => pe.Jobs };
        var command = new Command("reproduce", "Reproduce a paper's experiment end to end: train R seeds, analyse, prune, tabulate")
        {
            experiment, dataset, dataDir, runs, epochs, l2, weightDecay, lrDecay, adamEps, init, full, trainLimit, testLimit, threads, curves, draws, output, ledger, noTrain,
            lr, losses, smoothings, radii, samples, jobs,
        };
        var window = new WindowFlag(command, "Equilibrium window, last:N (the last N epochs); --full: last:150", $"last:{pp.Equilibrium}", "--equilibrium", legacyIsCount: true);
        var scheduling = new SchedulerFlags(command);
        Option[] pruningOnly = [l2, weightDecay, lrDecay, adamEps, init, curves, draws];
        Option[] partialEntropyOnly = [lr, losses, smoothings, radii, samples, jobs];
        command.SetAction(parse =>
        {
            var name = parse.GetValue(experiment);
            if (name is not ("pruning-paper" or "partial-entropy"))
                throw new ThermoException($"reproduce: unknown experiment '{name}' (known: pruning-paper, partial-entropy)");
            bool isFull = parse.GetValue(full);
            foreach (var o in name == "pruning-paper" ? partialEntropyOnly : pruningOnly)
                if (Given(parse, o)) throw new ThermoException($"{o.Name}: not an option of reproduce {name}");
            if (name == "partial-entropy" && window.Given(parse)) throw new ThermoException($"--window: not an option of reproduce {name} (it reads accuracies and the training signal, not temperatures)");
            if (name == "partial-entropy") return PartialEntropy(parse);
            // The protocol's defaults (or --full's), with what the user gave.
            var d = PruningPaperReproduction.Defaults(isFull, lrDecay: Given(parse, lrDecay));
            var protocol = d with
            {
                Dataset = parse.GetValue(dataset) ?? d.Dataset, DataDir = parse.GetValue(dataDir),
                Runs = parse.GetValue(runs) ?? d.Runs, Epochs = parse.GetValue(epochs) ?? d.Epochs,
                Equilibrium = window.Given(parse) ? window.LastEpochs(parse)!.Value : d.Equilibrium,
                L2s = Given(parse, l2) ? [parse.GetValue(l2)] : d.L2s, WeightDecay = parse.GetValue(weightDecay),
                TrainLimit = parse.GetValue(trainLimit), TestLimit = parse.GetValue(testLimit), Threads = parse.GetValue(threads),
                Prune = d.Prune with { Curves = CurveScopes.Parse(parse.GetValue(curves)!), RandomDraws = parse.GetValue(draws) },
                Ledger = parse.GetValue(ledger), TrainMissing = !parse.GetValue(noTrain),
                LrDecay = parse.GetValue(lrDecay), AdamEps = parse.GetValue(adamEps), Init = parse.GetValue(init)!,
            };
            // Before the scheduler's flags, so a bad setting is named first whichever scheduler runs it.
            PruningPaperReproduction.Validate(protocol);
            var artifacts = Program.ArtifactsDirectory();
            var dir = parse.GetValue(output) ?? Path.Combine(artifacts, "reproductions",
                $"pruning-paper-{protocol.Dataset}-e{protocol.Epochs}-n{protocol.Equilibrium}-r{protocol.Runs}{(protocol.TrainLimit is { } t ? $"-t{t}" : "")}");
            if (scheduling.Scheduler(parse) == Scheduler.Slurm)
            {
                if (Given(parse, threads)) throw new ThermoException("--threads: with --scheduler slurm, --cpus-per-task sets each training's threads");
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

        static bool Given(ParseResult parse, Option o) => parse.GetResult(o) is { Implicit: false };

        int PartialEntropy(ParseResult parse)
        {
            bool isFull = parse.GetValue(full);
            if (scheduling.Scheduler(parse) == Scheduler.Slurm)
                throw new ThermoException("--scheduler: reproduce partial-entropy runs locally only (its trainings are independent; submit them as `thermo train` tasks)");
            var d = PartialEntropyReproduction.Defaults(isFull);
            var protocol = d with
            {
                Dataset = parse.GetValue(dataset) ?? d.Dataset, DataDir = parse.GetValue(dataDir),
                Runs = parse.GetValue(runs) ?? d.Runs, Epochs = parse.GetValue(epochs) ?? d.Epochs, Lr = parse.GetValue(lr) ?? d.Lr,
                Losses = Flags.List(parse.GetValue(losses)) ?? [],
                Smoothings = (Flags.List(parse.GetValue(smoothings)) ?? []).Select(c => c.Split('+', StringSplitOptions.TrimEntries)).ToArray(),
                Radii = Flags.Doubles("--radii", parse.GetValue(radii)) ?? [], Samples = parse.GetValue(samples),
                TrainLimit = Given(parse, trainLimit) ? parse.GetValue(trainLimit) : d.TrainLimit,
                TestLimit = parse.GetValue(testLimit), Threads = parse.GetValue(threads),
                Ledger = parse.GetValue(ledger), TrainMissing = !parse.GetValue(noTrain), Jobs = parse.GetValue(jobs),
            };
            PartialEntropyReproduction.Validate(protocol); // a bad setting is named before the command line's own check below
            if (!protocol.TrainMissing && protocol.Ledger is null && !Given(parse, output)) throw new ThermoException("--no-train: needs --ledger or --out (the runs to tabulate)");
            var dir = parse.GetValue(output) ?? Path.Combine(Program.ArtifactsDirectory(), "reproductions",
                $"partial-entropy-{protocol.Dataset}-e{protocol.Epochs}-r{protocol.Runs}{(protocol.TrainLimit is { } t ? $"-t{t}" : "")}");
            var summaries = PartialEntropyReproduction.Run(protocol, dir, Program.ArtifactsDirectory(), SchedulerFlags.ThermoChild, new ConsoleProgress());
            var home = protocol.Ledger ?? dir;
            if (!CliOutput.Json) Console.WriteLine(File.ReadAllText(Path.Combine(PruningLedger.Tables(home), "README.md")));
            CliOutput.Result(new
            {
                directory = home, runs = protocol.Runs, epochs = protocol.Epochs,
                points = summaries.Select(s => new
                {
                    point = s.Point.Name, loss = s.Point.Loss, layers = s.Point.LayersText, radius = s.Point.Radius, runs = s.Runs,
                    best_test_accuracy = s.BestMean, final_test_accuracy = s.FinalMean,
                    final_minus_ce_points = Finite(s.FinalAgainstPlain?.MeanDifference), final_minus_ce_t_p_value = Finite(s.FinalAgainstPlain?.TPValue),
                    final_minus_ce_holm_t_p_value = Finite(s.FinalHolmTPValue),
                    best_minus_ce_points = Finite(s.BestAgainstPlain?.MeanDifference), best_minus_ce_t_p_value = Finite(s.BestAgainstPlain?.TPValue),
                }),
            }, () => { });
            return ExitCodes.Ok;
        }
        return command;
    }
}
