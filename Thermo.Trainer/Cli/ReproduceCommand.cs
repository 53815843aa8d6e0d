using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Pipeline;
using Thermo.Trainer.Training;

namespace Thermo.Trainer.Cli;

/// <summary>
/// <c>thermo reproduce pruning-paper</c>: the pruning paper's protocol end to end — R seeds trained,
/// each analysed over its last N epochs, pruned by every criterion, tabulated as Tables 2–3. Resumable:
/// complete runs with the same configuration are reused, unfinished ones resumed.
/// </summary>
public static class ReproduceCommand
{
    /// <summary>The protocol's sizes.</summary>
    public sealed record Protocol(string Dataset, string? DataDir, int Runs, int Epochs, int Equilibrium, double[] WeightDecays,
        int? TrainLimit, int? TestLimit, int Threads, PruneSettings Prune);

    public static Command Build()
    {
        var experiment = new Argument<string>("EXPERIMENT") { Description = "The experiment to reproduce: pruning-paper" };
        var dataset = new Option<string>("--dataset") { Description = "mnist (default data) or fashion-mnist", DefaultValueFactory = _ => "mnist" };
        var dataDir = new Option<string>("--data-dir") { Description = "Directory with the data set's own files (IDX)" };
        var runs = new Option<int>("--runs") { Description = "Independent trainings (seeds 1..R); --full: 10", DefaultValueFactory = _ => 5 };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per training; --full: 200", DefaultValueFactory = _ => 20 };
        var equilibrium = new Option<int>("--equilibrium") { Description = "Equilibrium window: the last N epochs; --full: 150", DefaultValueFactory = _ => 10 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "L2 weight decay (0: none); --full does both 1e-3 and 0", DefaultValueFactory = _ => 1e-3 };
        var full = new Option<bool>("--full") { Description = "The paper's protocol: 200 epochs, last 150 as equilibrium, 10 runs, with and without weight decay (hours on 2 cores)" };
        var trainLimit = new Option<int?>("--train-limit") { Description = "Use only the first N training images" };
        var testLimit = new Option<int?>("--test-limit") { Description = "Use only the first N test images" };
        var threads = new Option<int>("--threads") { Description = "CPU threads for torch (0 = all cores)", DefaultValueFactory = _ => 0 };
        var curves = new Option<string>("--curves") { Description = "Prune-fraction curves: none, layer or all", DefaultValueFactory = _ => "layer" };
        var draws = new Option<int>("--draws") { Description = "Random orders averaged per run", DefaultValueFactory = _ => 5 };
        var output = new Option<string>("--out") { Description = "Reproduction directory (default: artifacts/reproductions/pruning-paper-<dataset>-e<E>-n<N>-r<R>)" };
        var command = new Command("reproduce", "Reproduce a paper's experiment end to end: train R seeds, analyse, prune, tabulate")
        {
            experiment, dataset, dataDir, runs, epochs, equilibrium, weightDecay, full, trainLimit, testLimit, threads, curves, draws, output,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(experiment) != "pruning-paper")
                throw new ThermoException($"reproduce: unknown experiment '{parse.GetValue(experiment)}' (known: pruning-paper)");
            bool isFull = parse.GetValue(full);
            bool Given(Option o) => parse.GetResult(o) is { Implicit: false };
            var protocol = new Protocol(
                parse.GetValue(dataset)!, parse.GetValue(dataDir),
                isFull && !Given(runs) ? 10 : parse.GetValue(runs),
                isFull && !Given(epochs) ? 200 : parse.GetValue(epochs),
                isFull && !Given(equilibrium) ? 150 : parse.GetValue(equilibrium),
                isFull && !Given(weightDecay) ? [1e-3, 0] : [parse.GetValue(weightDecay)],
                parse.GetValue(trainLimit), parse.GetValue(testLimit), parse.GetValue(threads),
                new PruneSettings { Curves = parse.GetValue(curves)!, RandomDraws = parse.GetValue(draws) });
            if (protocol.Dataset is not ("mnist" or "fashion-mnist")) throw new ThermoException($"--dataset: the pruning paper's CNN runs on mnist or fashion-mnist, not '{protocol.Dataset}'");
            if (protocol.Runs < 2) throw new ThermoException($"--runs: need at least 2 runs for a standard deviation, got {protocol.Runs}");
            if (protocol.Epochs < 2) throw new ThermoException($"--epochs: must be at least 2, got {protocol.Epochs}");
            if (protocol.Equilibrium < 1 || protocol.Equilibrium > protocol.Epochs)
                throw new ThermoException($"--equilibrium: the last N epochs must lie in 1..{protocol.Epochs} (--epochs), got {protocol.Equilibrium}");
            if (protocol.Prune.Curves is not ("none" or "layer" or "all")) throw new ThermoException($"--curves: '{protocol.Prune.Curves}' is not none, layer or all");
            if (protocol.Prune.RandomDraws < 1) throw new ThermoException("--draws: must be positive");
            var artifacts = Program.ArtifactsDirectory();
            var dir = parse.GetValue(output) ?? Path.Combine(artifacts, "reproductions",
                $"pruning-paper-{protocol.Dataset}-e{protocol.Epochs}-n{protocol.Equilibrium}-r{protocol.Runs}{(protocol.TrainLimit is { } t ? $"-t{t}" : "")}");
            var tables = Run(protocol, dir, artifacts, new ConsoleProgress());
            CliOutput.Result(new
            {
                directory = dir, runs = protocol.Runs, epochs = protocol.Epochs, equilibrium = protocol.Equilibrium,
                conditions = tables.Select(t => new { weight_decay = t.Key, table = PruneCommand.TableJson(t.Value) }),
            }, () => { });
            return ExitCodes.Ok;
        });
        return command;
    }

    static string DecayName(double wd) => wd.ToString("0.####", CultureInfo.InvariantCulture);

    /// <summary>Runs the protocol into <paramref name="dir"/>; returns the table of each weight decay.</summary>
    public static IReadOnlyDictionary<double, IReadOnlyList<TableRow>> Run(Protocol p, string dir, string artifacts, ConsoleProgress progress)
    {
        var tables = new Dictionary<double, IReadOnlyList<TableRow>>();
        var clock = Stopwatch.StartNew();
        int total = p.WeightDecays.Length * p.Runs, done = 0;
        var summary = new StringBuilder($"# Reproduction of the pruning paper's Tables 2–3\n\n{p.Runs} runs of fourconv on {p.Dataset}, {p.Epochs} epochs, equilibrium window the last {p.Equilibrium} epochs (last:{p.Equilibrium}), Adam lr 1e-3, dropout 0.1, batch 128.\n\n");
        foreach (var wd in p.WeightDecays)
        {
            var condition = Path.Combine(dir, $"weight-decay={DecayName(wd)}");
            var runDirs = new List<string>();
            for (int seed = 1; seed <= p.Runs; seed++)
            {
                var config = new TrainConfig
                {
                    Dataset = p.Dataset, DataDir = p.DataDir, Epochs = p.Epochs, Seed = seed, WeightDecay = wd,
                    TrainLimit = p.TrainLimit, TestLimit = p.TestLimit, Threads = p.Threads,
                };
                var runDir = Path.Combine(condition, "runs", $"seed-{seed}");
                progress.Message($"[{done + 1}/{total}] weight decay {DecayName(wd)}, seed {seed}: {runDir}");
                TrainOrReuse(config, runDir, artifacts, progress);
                AnalyseOrReuse(runDir, p.Epochs, p.Equilibrium, progress);
                runDirs.Add(runDir);
                done++;
                progress.Message($"  {done}/{total} runs ready after {clock.Elapsed:hh\\:mm\\:ss}; ETA {clock.Elapsed / done * (total - done):hh\\:mm\\:ss} before pruning");
            }
            var results = PruneCommand.Run(runDirs, p.Prune, artifacts, progress.Message);
            var table = Aggregation.Table(results, p.Prune.K, p.Prune.M);
            var pruningDir = Path.Combine(condition, PruningFiles.Directory);
            PruningFiles.WriteResults(Path.Combine(pruningDir, PruningFiles.ResultsFile), results, p.Prune.K, p.Prune.M);
            var caption = $"Weight decay {DecayName(wd)}: " + PruneCommand.TableCaption(p.Runs, p.Prune);
            var markdown = Aggregation.Markdown(table, caption);
            AtomicFile.writeAllText(Path.Combine(pruningDir, "table.md"), markdown);

            if (!CliOutput.Json)
            {
                Console.WriteLine($"weight decay {DecayName(wd)}:");
                Console.WriteLine(Aggregation.Text(table));
            }
            tables[wd] = table;
        }
        // Every condition in the directory, not only this call's: a call with --weight-decay 0 after
        // one with the default adds its table beside the other.
        foreach (var condition in Directory.EnumerateDirectories(dir, "weight-decay=*").Order())
        {
            var table = Path.Combine(condition, PruningFiles.Directory, "table.md");
            var runs = Directory.Exists(Path.Combine(condition, "runs")) ? Directory.EnumerateDirectories(Path.Combine(condition, "runs"), "seed-*").Order().ToList() : [];
            if (!File.Exists(table) || runs.Count == 0) continue;
            summary.Append($"## Weight decay {Path.GetFileName(condition)["weight-decay=".Length..]}\n\n").Append(OriginalMetrics(runs)).Append(File.ReadAllText(table));
        }
        AtomicFile.writeAllText(Path.Combine(dir, "README.md"), summary.ToString());
        progress.Message($"reproduction complete in {clock.Elapsed:hh\\:mm\\:ss}: {Path.Combine(dir, "README.md")}");
        return tables;
    }

    /// <summary>The paper's Table 1: final test and training metrics over the runs.</summary>
    static string OriginalMetrics(IReadOnlyList<string> runs)
    {
        var last = runs.Select(r => TrainingRun.ReadMetrics(Path.Combine(r, TrainingRun.MetricsFile)).Last()).ToList();
        string Pct(Func<EpochMetrics, double> f) { var (m, s) = Aggregation.MeanAndSampleStd(last.Select(f).ToList()); return string.Create(CultureInfo.InvariantCulture, $"{m * 100:F2}% ± {s * 100:F2}%"); }
        string Val(Func<EpochMetrics, double> f) { var (m, s) = Aggregation.MeanAndSampleStd(last.Select(f).ToList()); return string.Create(CultureInfo.InvariantCulture, $"{m:F4} ± {s:F4}"); }
        return $"Final metrics (the paper's Table 1): test accuracy {Pct(m => m.TestAccuracy)}, test loss {Val(m => m.TestLoss)}, training accuracy {Pct(m => m.TrainAccuracy)}, training loss {Val(m => m.TrainLoss)}.\n\n";
    }

    static string ConfigKey(TrainConfig c) => JsonSerializer.Serialize(c with { Epochs = 0 }, RunManifest.Json);

    /// <summary>Reuses a complete run of the same configuration, resumes an unfinished one, trains a missing one.</summary>
    static void TrainOrReuse(TrainConfig config, string runDir, string artifacts, ConsoleProgress progress)
    {
        var existing = RunManifest.TryLoad(runDir);
        if (existing is not null && existing.Native is null)
        {
            // Trained before Thermo checked its native kernels: on AVX-512 machines its weights may be
            // wrong (docs/NATIVE.md), so it is trained again rather than reused.
            progress.Message($"  retraining: {runDir} was trained before Thermo verified its native kernels (no \"native\" in run.json)");
            Directory.Delete(runDir, recursive: true);
            existing = null;
        }
        if (existing is not null && ConfigKey(existing.Config) != ConfigKey(config))
            throw new ThermoException($"{runDir}: holds a run of another configuration; choose another --out or remove it");
        if (existing is { Status: RunStatus.Complete } && existing.Config.Epochs == config.Epochs)
        {
            progress.Message($"  reusing the complete run ({existing.LastCompleteEpoch} epochs)");
            return;
        }
        if (existing is not null && existing.Config.Epochs > config.Epochs)
            throw new ThermoException($"{runDir}: holds a run of {existing.Config.Epochs} epochs, more than --epochs {config.Epochs}; choose another --out");
        using var trainer = existing is not null && existing.LastCompleteEpoch >= 0
            ? TrainingRun.Resume(existing, config, runDir, artifacts, progress)
            : TrainingRun.Start(config, runDir, artifacts, progress);
        trainer.Run();
    }

    /// <summary>Analyses a run over its last N epochs unless its analysis already covers exactly that window.</summary>
    static void AnalyseOrReuse(string runDir, int epochs, int equilibrium, ConsoleProgress progress)
    {
        var path = Path.Combine(runDir, AnalysisOutput.Directory, "temperature.parquet");
        if (File.Exists(path))
        {
            try
            {
                var (_, _, from, to) = PruningFiles.ReadTemperatures(runDir, "conv1");
                if (from == epochs - equilibrium && to == epochs) return;
            }
            catch (ArtifactException) { }
        }
        progress.Message($"  analysing over last:{equilibrium}");
        AnalysisOutput.write(Engine.analyze(runDir, AnalysisOptions.Default.WithWindow(WindowSpec.NewLast(equilibrium))));
    }
}
