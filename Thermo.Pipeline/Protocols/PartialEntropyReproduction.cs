using System.Diagnostics;
using System.Globalization;
using System.Text;
using Thermo.Analysis;
using Thermo.Pipeline.Pruning;
using Thermo.Pipeline.Report;
using Thermo.Trainer;
using Thermo.Trainer.Training;

namespace Thermo.Pipeline.Protocols;

/// <summary>
/// The partial-entropy paper's fully-connected experiments (<c>thermo reproduce partial-entropy</c>,
/// its Figs 3–5): the MLP trained with plain cross-entropy and with PLA/PLEA smoothed over each choice
/// of layers at each radius R, every grid point over the same seeds; tabulated as best and final test
/// accuracy per point, paired against plain cross-entropy seed by seed, with each run's training
/// signal s_I and the epoch of its peak (the paper's regime change).
/// </summary>
public static class PartialEntropyReproduction
{
    /// <summary>
    /// The grid and the training every point shares (plain SGD with momentum, no weight decay, no
    /// dropout, Kaiming initialisation, as the paper's fully-connected experiments). Each of
    /// <paramref name="Smoothings"/> is one set of layers smoothed together. Without a ledger the
    /// tables go beside the runs; with one, each finished run's metrics, gradient noise and manifest
    /// are kept there and the tables are built from the ledger alone. With <paramref name="Jobs"/> above
    /// one, that many trainings run at once as child <c>thermo train --resumable</c> processes.
    /// </summary>
    public sealed record Protocol(string Dataset, string? DataDir, string Model, int Runs, int Epochs, double Lr, double Momentum, int BatchSize,
        string[] Losses, string[][] Smoothings, double[] Radii, int Samples, int? TrainLimit, int? TestLimit, int Threads,
        string? Ledger = null, bool TrainMissing = true, int Jobs = 1);

    /// <summary>One grid point: plain cross-entropy (<c>ce</c>, no layers) or a smoothed loss over some layers at a radius.</summary>
    public sealed record Point(string Loss, string[] Layers, double Radius)
    {
        public bool IsPlain => Loss == "ce";
        public string LayersText => IsPlain ? "" : string.Join("+", Layers);
        /// <summary>The point's directory name: <c>ce</c>, or e.g. <c>pla-fc1+fc2-R=0.03</c>.</summary>
        public string Name => IsPlain ? "ce" : $"{Loss}-{LayersText}-R={Number(Radius)}";
    }

    /// <summary>What one training gave: its best and final test accuracy and where its signal peaked.</summary>
    public sealed record Outcome(Point Point, int Seed, double BestTestAccuracy, int BestEpoch, double FinalTestAccuracy,
        double FinalTestLoss, double FinalTrainLoss, double TrainSeconds, SignalPeak[] SignalPeaks);

    /// <summary>A grid point over the seeds: mean ± sample std, and the paired difference from plain cross-entropy.</summary>
    public sealed record Summary(Point Point, int Runs, double BestMean, double BestStd, double FinalMean, double FinalStd,
        PairedComparison? BestAgainstPlain, PairedComparison? FinalAgainstPlain);

    public const string TableFile = "partial-entropy.parquet";
    public const string SummaryFile = "partial-entropy-summary.parquet";
    public const string PeaksFile = "signal-peaks.parquet";
    const string TableName = "partial_entropy";
    const string SummaryName = "partial_entropy_summary";
    const string PeaksName = "signal_peaks";

    /// <summary>Shortest text that reads back as the same number (0.03, 1E-06), so distinct radii name distinct points.</summary>
    static string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The grid: plain cross-entropy first, then every loss × smoothing × radius.</summary>
    public static IReadOnlyList<Point> Points(Protocol p) =>
        [new Point("ce", [], 0), .. from loss in p.Losses from layers in p.Smoothings from radius in p.Radii select new Point(loss, layers, radius)];

    /// <summary>A point's training configuration for one seed. Only the initial and final snapshots are
    /// written: the experiment reads the metrics and the gradient noise, not the trajectories.</summary>
    public static TrainConfig Config(Protocol p, Point point, int seed)
    {
        var defaults = new TrainConfig();
        return new TrainConfig
        {
            Model = p.Model, Dataset = p.Dataset, DataDir = p.DataDir, Epochs = p.Epochs, Seed = seed,
            Optimizer = "sgd", Lr = p.Lr, Momentum = p.Momentum, BatchSize = p.BatchSize, WeightDecay = 0, L2 = 0, Dropout = 0, Init = "kaiming",
            TrainLimit = p.TrainLimit, TestLimit = p.TestLimit, SnapshotEvery = p.Epochs, Threads = p.Threads,
            Loss = point.Loss, SmoothLayers = point.IsPlain ? null : point.Layers,
            Radius = point.IsPlain ? defaults.Radius : point.Radius, Samples = point.IsPlain ? defaults.Samples : p.Samples,
        };
    }

    /// <summary>Trains what is missing, then tabulates and draws every point from the runs (or the ledger).
    /// <paramref name="thermo"/> makes a child <c>thermo</c> process (used with more than one job).
    /// Returns the per-point summaries.</summary>
    public static IReadOnlyList<Summary> Run(Protocol p, string dir, string artifacts, Func<IReadOnlyList<string>, ProcessStartInfo> thermo, ITrainingProgress progress)
    {
        Validate(p);
        var clock = Stopwatch.StartNew();
        var home = p.Ledger ?? dir;
        if (p.Ledger is { } claimed) PruningLedger.Claim(claimed, "partial-entropy");
        var runs = new List<(Point Point, int Seed, string Dir)>();
        var todo = new List<(Point Point, int Seed, TrainConfig Config, string Dir)>();
        // Seed-major: after any interruption every point has the same seeds, so the pairing holds.
        for (int seed = 1; seed <= p.Runs; seed++)
            foreach (var point in Points(p))
            {
                var config = Config(p, point, seed);
                var runDir = Path.Combine(dir, point.Name, $"seed-{seed}");
                if (p.Ledger is { } ledger && PruningLedger.Has(ledger, point.Name, seed))
                {
                    ProtocolRuns.CheckLedgerEntry(Entry(ledger, point, seed), config);
                    runs.Add((point, seed, Entry(ledger, point, seed)));
                }
                else if (p.TrainMissing) todo.Add((point, seed, config, runDir));
                else if (p.Ledger is null && RunManifest.TryLoadQuietly(runDir) is { Status: RunStatus.Complete } complete)
                {
                    // Only what this grid would have trained: the same configuration, the same epochs.
                    if (!RunDirectory.SameExperiment(complete.Config, config) || complete.Config.Epochs != config.Epochs)
                        throw new SettingException(ProtocolRuns.Out, runDir, "holds a run of another configuration; choose another output directory");
                    runs.Add((point, seed, runDir));
                }
            }

        int trained = 0;
        void Finished((Point Point, int Seed, TrainConfig Config, string Dir) t)
        {
            trained++;
            var kept = t.Dir;
            if (p.Ledger is { } into)
            {
                kept = Entry(into, t.Point, t.Seed);
                PruningLedger.AddTrainingRecord(t.Dir, kept);
                progress.Message($"  kept in the ledger: {kept}");
            }
            runs.Add((t.Point, t.Seed, kept));
            progress.Message($"  {trained}/{todo.Count} trainings done after {clock.Elapsed:hh\\:mm\\:ss}; ETA {clock.Elapsed / trained * (todo.Count - trained):hh\\:mm\\:ss}");
        }
        if (p.Jobs == 1)
            foreach (var t in todo)
            {
                progress.Message($"[{trained + 1}/{todo.Count}] {t.Point.Name}, seed {t.Seed}: {t.Dir}");
                ProtocolRuns.TrainOrReuse(t.Config, t.Dir, artifacts, progress);
                Finished(t);
            }
        else
            ProtocolRuns.TrainInChildren(todo.Select(t => (t.Config, t.Dir)).ToList(), Path.Combine(dir, "configs"), p.Jobs, thermo, progress,
                i => Finished(todo[i]));

        if (runs.Count == 0) throw new ThermoException($"{home}: no complete run of this grid to tabulate");
        var order = Points(p).Select((point, i) => (point.Name, i)).ToDictionary(x => x.Name, x => x.i);
        runs = runs.OrderBy(r => r.Seed).ThenBy(r => order[r.Point.Name]).ToList();
        var metrics = runs.ToDictionary(r => (r.Point.Name, r.Seed), r => TrainingRun.ReadMetrics(RunLayout.Metrics(r.Dir)));
        var noise = runs.ToDictionary(r => (r.Point.Name, r.Seed), r => TrainingRun.ReadGradNoise(RunLayout.GradNoise(r.Dir)));
        var outcomes = runs.Select(r => Measure(r.Point, r.Seed, metrics[(r.Point.Name, r.Seed)], noise[(r.Point.Name, r.Seed)])).ToList();
        var summaries = Summarise(outcomes);
        // Tables, figures and README as one directory that appears whole or not at all.
        var tables = PruningLedger.Tables(home);
        AtomicFiles.ReplaceDirectory(tables, staged =>
        {
            WriteOutcomes(Path.Combine(staged, TableFile), outcomes);
            WritePeaks(Path.Combine(staged, PeaksFile), outcomes);
            WriteSummaries(Path.Combine(staged, SummaryFile), summaries);
            var figures = PartialEntropyFigures.Write(staged, outcomes, summaries,
                runs.Where(r => r.Point.IsPlain).Select(r => (r.Seed, noise[(r.Point.Name, r.Seed)])).ToList(), metrics);
            AtomicFiles.WriteAllText(Path.Combine(staged, "README.md"), Markdown(p, outcomes, summaries, figures));
        });
        PruningLedger.WriteIndex(home, "The partial-entropy paper's grid");
        progress.Message($"partial-entropy grid tabulated in {clock.Elapsed:hh\\:mm\\:ss}: {Path.Combine(tables, "README.md")}");
        return summaries;
    }

    static string Entry(string ledger, Point point, int seed) => PruningLedger.Entry(ledger, point.Name, seed);

    /// <summary>The layers with weights of the fully-connected models the grid trains (fc1…fcN, out).</summary>
    public static string[] SmoothableLayers(string model) => model switch
    {
        "mlp2" => ["fc1", "fc2", "out"],
        "mlp3" => ["fc1", "fc2", "fc3", "out"],
        _ => throw new SettingException(nameof(Protocol.Model), "", $"the partial-entropy grid trains mlp2 or mlp3, not '{model}'"),
    };

    /// <summary>Refuses a grid that would fail, or collide, only after some of it has trained.</summary>
    public static void Validate(Protocol p)
    {
        if (p.Jobs < 1) throw new SettingException(nameof(Protocol.Jobs), "", $"must be positive, got {p.Jobs}");
        // The thread count is part of a run's configuration (a resumed run must match it), so it is
        // stated rather than derived from --jobs and the machine's cores.
        if (p.Jobs > 1 && p.Threads < 1) throw new SettingException(nameof(Protocol.Jobs), "", "give --threads too: each of the trainings run at once uses that many threads");
        var layers = SmoothableLayers(p.Model);
        foreach (var choice in p.Smoothings)
        {
            if (choice.Length == 0 || choice.Any(string.IsNullOrWhiteSpace))
                throw new SettingException(nameof(Protocol.Smoothings), "", $"'{string.Join("+", choice)}' names an empty layer");
            if (choice.FirstOrDefault(l => !layers.Contains(l)) is { } unknown)
                throw new SettingException(nameof(Protocol.Smoothings), "", $"unknown layer '{unknown}' (layers of {p.Model} with weights: {string.Join(", ", layers)})");
        }
        if (Points(p).GroupBy(point => point.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ThermoException($"--losses/--smoothings/--radii: the grid holds {twice.Key} twice; give each loss, choice of layers and radius once");
    }

    /// <summary>One run's outcome from its metrics and gradient noise (pure).</summary>
    public static Outcome Measure(Point point, int seed, IReadOnlyList<MetricsRow> metrics, IReadOnlyList<GradientNoiseRow> gradNoise)
    {
        var trained = metrics.Where(m => m.Epoch > 0).ToList();
        if (trained.Count == 0) throw new ArtifactException($"{point.Name}, seed {seed}: no trained epoch in the metrics");
        // The first epoch of the best accuracy, as "best test accuracy reached during training" reads.
        var best = trained.Aggregate((a, b) => b.TestAccuracy > a.TestAccuracy ? b : a);
        var last = trained[^1];
        var peaks = GradientNoise.SignalPeaks(gradNoise.ToArray());
        return new Outcome(point, seed, best.TestAccuracy, best.Epoch, last.TestAccuracy, last.TestLoss, last.TrainLoss,
            trained.Sum(m => m.TrainSeconds), peaks);
    }

    /// <summary>Each point over its seeds, and paired against plain cross-entropy on the seeds both have (pure).</summary>
    public static IReadOnlyList<Summary> Summarise(IReadOnlyList<Outcome> outcomes)
    {
        var plain = outcomes.Where(o => o.Point.IsPlain).ToDictionary(o => o.Seed);
        return outcomes.GroupBy(o => o.Point.Name).Select(g =>
        {
            var runs = g.OrderBy(o => o.Seed).ToList();
            var (bestMean, bestStd) = Aggregation.MeanAndSampleStd(runs.Select(o => o.BestTestAccuracy).ToList());
            var (finalMean, finalStd) = Aggregation.MeanAndSampleStd(runs.Select(o => o.FinalTestAccuracy).ToList());
            PairedComparison? Against(Func<Outcome, double> value)
            {
                var paired = runs.Where(o => plain.ContainsKey(o.Seed)).ToList();
                if (runs[0].Point.IsPlain || paired.Count == 0) return null;
                // Percentage points, as the pruning tables compare.
                return PairedTests.Compare(paired.Select(o => 100 * value(o)).ToArray(), paired.Select(o => 100 * value(plain[o.Seed])).ToArray());
            }
            return new Summary(runs[0].Point, runs.Count, bestMean, bestStd, finalMean, finalStd, Against(o => o.BestTestAccuracy), Against(o => o.FinalTestAccuracy));
        }).ToList();
    }

    /// <summary>
    /// Every two choices of layers at the same loss and radius, paired by seed on best test accuracy
    /// (percentage points, A − B, A the earlier choice of the grid): the paper's comparison of which
    /// layers to smooth (pure).
    /// </summary>
    public static IReadOnlyList<(string Loss, double Radius, string A, string B, PairedComparison Comparison)> BetweenSmoothings(IReadOnlyList<Outcome> outcomes)
    {
        var rows = new List<(string, double, string, string, PairedComparison)>();
        foreach (var cell in outcomes.Where(o => !o.Point.IsPlain).GroupBy(o => (o.Point.Loss, o.Point.Radius)))
        {
            var choices = cell.Select(o => o.Point.LayersText).Distinct().ToList();
            for (int i = 0; i < choices.Count; i++)
                for (int j = i + 1; j < choices.Count; j++)
                {
                    var a = cell.Where(o => o.Point.LayersText == choices[i]).ToDictionary(o => o.Seed);
                    var b = cell.Where(o => o.Point.LayersText == choices[j]).ToDictionary(o => o.Seed);
                    var seeds = a.Keys.Intersect(b.Keys).Order().ToArray();
                    if (seeds.Length == 0) continue;
                    rows.Add((cell.Key.Loss, cell.Key.Radius, choices[i], choices[j],
                        PairedTests.Compare(seeds.Select(k => 100 * a[k].BestTestAccuracy).ToArray(), seeds.Select(k => 100 * b[k].BestTestAccuracy).ToArray())));
                }
        }
        return rows;
    }

    static void WriteOutcomes(string path, IReadOnlyList<Outcome> o) =>
        Table.Write(path, TableName,
            Column.NewStringColumn("point", o.Select(x => x.Point.Name).ToArray()),
            Column.NewStringColumn("loss", o.Select(x => x.Point.Loss).ToArray()),
            Column.NewStringColumn("layers", o.Select(x => x.Point.LayersText).ToArray()),
            Column.NewFloat64Column("radius", o.Select(x => x.Point.Radius).ToArray()),
            Column.NewInt32Column("seed", o.Select(x => x.Seed).ToArray()),
            Column.NewFloat64Column("best_test_accuracy", o.Select(x => x.BestTestAccuracy).ToArray()),
            Column.NewInt32Column("best_epoch", o.Select(x => x.BestEpoch).ToArray()),
            Column.NewFloat64Column("final_test_accuracy", o.Select(x => x.FinalTestAccuracy).ToArray()),
            Column.NewFloat64Column("final_test_loss", o.Select(x => x.FinalTestLoss).ToArray()),
            Column.NewFloat64Column("final_train_loss", o.Select(x => x.FinalTrainLoss).ToArray()),
            Column.NewFloat64Column("train_seconds", o.Select(x => x.TrainSeconds).ToArray()));

    static void WritePeaks(string path, IReadOnlyList<Outcome> outcomes)
    {
        var rows = outcomes.SelectMany(o => o.SignalPeaks.Select(peak => (o, peak))).ToList();
        Table.Write(path, PeaksName,
            Column.NewStringColumn("point", rows.Select(r => r.o.Point.Name).ToArray()),
            Column.NewInt32Column("seed", rows.Select(r => r.o.Seed).ToArray()),
            Column.NewStringColumn("layer", rows.Select(r => r.peak.Layer).ToArray()),
            Column.NewInt32Column("peak_epoch", rows.Select(r => r.peak.Epoch).ToArray()),
            Column.NewFloat64Column("peak_signal", rows.Select(r => r.peak.Signal).ToArray()));
    }

    static void WriteSummaries(string path, IReadOnlyList<Summary> s)
    {
        static double Of(PairedComparison? c, Func<PairedComparison, double> f) => c is null ? double.NaN : f(c);
        Table.Write(path, SummaryName,
            Column.NewStringColumn("point", s.Select(x => x.Point.Name).ToArray()),
            Column.NewStringColumn("loss", s.Select(x => x.Point.Loss).ToArray()),
            Column.NewStringColumn("layers", s.Select(x => x.Point.LayersText).ToArray()),
            Column.NewFloat64Column("radius", s.Select(x => x.Point.Radius).ToArray()),
            Column.NewInt32Column("runs", s.Select(x => x.Runs).ToArray()),
            Column.NewFloat64Column("best_test_accuracy_mean", s.Select(x => x.BestMean).ToArray()),
            Column.NewFloat64Column("best_test_accuracy_sd", s.Select(x => x.BestStd).ToArray()),
            Column.NewFloat64Column("final_test_accuracy_mean", s.Select(x => x.FinalMean).ToArray()),
            Column.NewFloat64Column("final_test_accuracy_sd", s.Select(x => x.FinalStd).ToArray()),
            Column.NewFloat64Column("best_minus_ce_points", s.Select(x => Of(x.BestAgainstPlain, c => c.MeanDifference)).ToArray()),
            Column.NewFloat64Column("best_minus_ce_low95", s.Select(x => Of(x.BestAgainstPlain, c => c.Low95)).ToArray()),
            Column.NewFloat64Column("best_minus_ce_high95", s.Select(x => Of(x.BestAgainstPlain, c => c.High95)).ToArray()),
            Column.NewFloat64Column("best_minus_ce_t_p_value", s.Select(x => Of(x.BestAgainstPlain, c => c.TPValue)).ToArray()),
            Column.NewFloat64Column("best_minus_ce_wilcoxon_p_value", s.Select(x => Of(x.BestAgainstPlain, c => c.WilcoxonPValue)).ToArray()),
            Column.NewFloat64Column("final_minus_ce_points", s.Select(x => Of(x.FinalAgainstPlain, c => c.MeanDifference)).ToArray()),
            Column.NewFloat64Column("final_minus_ce_t_p_value", s.Select(x => Of(x.FinalAgainstPlain, c => c.TPValue)).ToArray()));
    }

    static string Markdown(Protocol p, IReadOnlyList<Outcome> outcomes, IReadOnlyList<Summary> summaries, IReadOnlyList<string> figures)
    {
        static string Pct(double v) => double.IsNaN(v) ? "—" : (100 * v).ToString("F2", CultureInfo.InvariantCulture);
        static string Pts(double v) => double.IsNaN(v) ? "—" : v.ToString("+0.00;−0.00;0.00", CultureInfo.InvariantCulture);
        var seeds = outcomes.Select(o => o.Seed).Distinct().Count();
        var md = new StringBuilder("# The partial-entropy paper's fully-connected grid (Figs 3–5)\n\n");
        md.Append(CultureInfo.InvariantCulture, $"{p.Model} on {p.Dataset}{(p.TrainLimit is { } t ? $" (the first {t} training images)" : "")}, {p.Epochs} epochs, SGD lr {Number(p.Lr)} momentum {Number(p.Momentum)}, batch {p.BatchSize}, no weight decay or dropout, Kaiming initialisation; ")
          .Append(CultureInfo.InvariantCulture, $"smoothed losses with y = {p.Samples} displaced copies in the hyper-cube of half-side R on the named layers' weights. Seeds per point: up to {seeds} ({outcomes.Count} runs in all).\n\n")
          .Append("Accuracy in %, mean ± sample sd over a point's seeds; \"− ce\" is the paired difference from plain cross-entropy over the seeds both have (\"pairs\"), in points, with the two-sided paired t p-value.\n\n")
          .Append("| point | runs | best test accuracy | pairs | best − ce | p | final test accuracy | final − ce | p |\n|---|---|---|---|---|---|---|---|---|\n");
        foreach (var s in summaries)
            md.Append(CultureInfo.InvariantCulture, $"| {s.Point.Name} | {s.Runs} | {Pct(s.BestMean)} ± {Pct(s.BestStd)} | {s.BestAgainstPlain?.Runs.ToString(CultureInfo.InvariantCulture) ?? "—"} | {Pts(s.BestAgainstPlain?.MeanDifference ?? double.NaN)} | {Aggregation.P(s.BestAgainstPlain?.TPValue ?? double.NaN)} | {Pct(s.FinalMean)} ± {Pct(s.FinalStd)} | {Pts(s.FinalAgainstPlain?.MeanDifference ?? double.NaN)} | {Aggregation.P(s.FinalAgainstPlain?.TPValue ?? double.NaN)} |\n");
        var between = BetweenSmoothings(outcomes);
        if (between.Count > 0)
        {
            md.Append("\nBetween choices of layers at the same loss and radius (best test accuracy, A − B in points over the seeds both have; the paper finds the second layer alone best and both layers worst):\n\n")
              .Append("| loss | R | A − B | pairs | mean ± sd | 95 % interval | t p | Wilcoxon p |\n|---|---|---|---|---|---|---|---|\n");
            foreach (var (loss, radius, a, b, c) in between)
                md.Append(CultureInfo.InvariantCulture, $"| {loss} | {Number(radius)} | {a} − {b} | {c.Runs} | {Pts(c.MeanDifference)} ± {c.StandardDeviation:F2} | [{c.Low95:F2}, {c.High95:F2}] | {Aggregation.P(c.TPValue)} | {Aggregation.P(c.WilcoxonPValue)} |\n");
        }
        var plainPeaks = outcomes.Where(o => o.Point.IsPlain).SelectMany(o => o.SignalPeaks).GroupBy(k => k.Layer)
            .Select(g => $"{g.Key} at epoch {string.Join(", ", g.Select(k => k.Epoch))}").ToList();
        if (plainPeaks.Count > 0)
            md.Append("\nThe training signal s_I of plain cross-entropy peaks (per seed): ").Append(string.Join("; ", plainPeaks)).Append(".\n");
        md.Append('\n');
        foreach (var f in figures) md.Append($"![{Path.GetFileNameWithoutExtension(f)}]({f})\n\n");
        return md.ToString();
    }
}
