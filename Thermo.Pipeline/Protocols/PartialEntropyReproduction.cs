using System.Diagnostics;
using System.Globalization;
using System.Text;
using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Analysis.Statistics;
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

    /// <summary>
    /// A grid point over the seeds: mean ± sample std, and the paired difference from plain
    /// cross-entropy. The final accuracy is the outcome; the best epoch's is picked on the test set, so
    /// it is reported but biased upwards. <see cref="FinalHolmTPValue"/> is the final difference's t
    /// p-value Holm-adjusted over every point of the table (the family of comparisons with plain
    /// cross-entropy).
    /// </summary>
    public sealed record Summary(Point Point, int Runs, double BestMean, double BestStd, double FinalMean, double FinalStd,
        PairedComparison? BestAgainstPlain, PairedComparison? FinalAgainstPlain, double FinalHolmTPValue = double.NaN);

    /// <summary>
    /// Two points of one loss paired by seed on final test accuracy (points, A − B), with the t
    /// p-value Holm-adjusted over its family (every comparison of the same kind in the table), and each
    /// point's dose: the expected squared displacement of the smoothed weights, R²/3 per weight.
    /// </summary>
    public sealed record PointComparison(string Loss, Point A, Point B, PairedComparison Comparison, double HolmTPValue, double DoseA, double DoseB);

    /// <summary>The setting of the grid as a whole: its losses, smoothings and radii together.</summary>
    public const string Grid = "LossesSmoothingsRadii";
    /// <summary>The setting of a smoothed loss's layers and radii together.</summary>
    public const string SmoothingsAndRadii = "SmoothingsAndRadii";

    /// <summary>The protocol's default data: Fashion-MNIST, as the paper's fully-connected experiments.</summary>
    public const string DefaultDataset = "fashion-mnist";

    /// <summary>
    /// The protocol's defaults: mlp2, SGD with momentum 0.9, batch 256, 3 seeds, PLA and PLEA over fc1,
    /// fc2 and fc1+fc2 at R = 0.01, 0.03 and 0.1 with 4 samples. A short run: 20 epochs at lr 2e-3 on the
    /// first 20,000 images (about the paper's η × steps); with <paramref name="full"/> the paper's: 120
    /// epochs at lr 1e-4 on every image.
    /// </summary>
    public static Protocol Defaults(bool full) => new(DefaultDataset, null, "mlp2", Runs: 3, Epochs: full ? 120 : 20,
        Lr: full ? 1e-4 : 2e-3, Momentum: 0.9, BatchSize: 256,
        Losses: ["pla", "plea"], Smoothings: [["fc1"], ["fc2"], ["fc1", "fc2"]], Radii: [0.01, 0.03, 0.1], Samples: 4,
        TrainLimit: full ? null : 20000, TestLimit: null, Threads: 0);

    public const string TableFile = "partial-entropy.parquet";
    public const string SummaryFile = "partial-entropy-summary.parquet";
    public const string PeaksFile = "signal-peaks.parquet";
    public const string ComparisonsFile = "comparisons.parquet";
    const string TableName = "partial_entropy";
    const string SummaryName = "partial_entropy_summary";
    const string PeaksName = "signal_peaks";
    const string ComparisonsName = "partial_entropy_comparisons";

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
        var metrics = runs.ToDictionary(r => (r.Point.Name, r.Seed), r => ReadMetrics(r.Dir));
        var noise = runs.ToDictionary(r => (r.Point.Name, r.Seed), r => TrainingRun.ReadGradNoise(RunLayout.GradNoise(r.Dir)));
        var outcomes = runs.Select(r => Measure(r.Point, r.Seed, metrics[(r.Point.Name, r.Seed)], noise[(r.Point.Name, r.Seed)])).ToList();
        var summaries = Summarise(outcomes);
        var weights = WeightsPerLayer(runs[0].Dir, outcomes.Select(o => o.Point));
        var between = BetweenSmoothings(outcomes, weights);
        var equalDose = AtEqualDose(outcomes, weights);
        // Tables, figures and README as one directory that appears whole or not at all.
        var tables = PruningLedger.Tables(home);
        AtomicFiles.ReplaceDirectory(tables, staged =>
        {
            WriteOutcomes(Path.Combine(staged, TableFile), outcomes);
            WritePeaks(Path.Combine(staged, PeaksFile), outcomes);
            WriteSummaries(Path.Combine(staged, SummaryFile), summaries);
            var figures = PartialEntropyFigures.Write(staged, outcomes, summaries,
                runs.Where(r => r.Point.IsPlain).Select(r => (r.Seed, noise[(r.Point.Name, r.Seed)])).ToList(), metrics);
            WriteComparisons(Path.Combine(staged, ComparisonsFile), between, equalDose);
            AtomicFiles.WriteAllText(Path.Combine(staged, "README.md"), Markdown(p, outcomes, summaries, between, equalDose, figures));
        });
        PruningLedger.WriteIndex(home, "The partial-entropy paper's grid");
        progress.Message($"partial-entropy grid tabulated in {clock.Elapsed:hh\\:mm\\:ss}: {Path.Combine(tables, "README.md")}");
        return summaries;
    }

    static string Entry(string ledger, Point point, int seed) => PruningLedger.Entry(ledger, point.Name, seed);

    /// <summary>
    /// A run's metrics (RUN/metrics.parquet), for its outcome; <see cref="ArtifactException"/> naming the
    /// file when it holds no trained epoch.
    /// </summary>
    public static List<MetricsRow> ReadMetrics(string run)
    {
        var file = RunLayout.Metrics(run);
        var rows = TrainingRun.ReadMetrics(file);
        if (!rows.Any(m => m.Epoch > 0)) throw new ArtifactException($"{file}: no trained epoch", file);
        return rows;
    }

    /// <summary>
    /// Weights per layer of the model a run trained, from its run.json's layer shapes (the weight tensors
    /// the smoothing perturbs), for the doses of <paramref name="points"/>; <see cref="ArtifactException"/>
    /// naming the run directory without a run.json, or the run.json that lists no weight of a layer a point smooths.
    /// </summary>
    public static IReadOnlyDictionary<string, long> WeightsPerLayer(string run, IEnumerable<Point> points)
    {
        var manifest = RunManifest.TryLoad(run) ?? throw new ArtifactException($"{run}: holds no {RunLayout.ManifestFile}", run);
        var weights = manifest.Layers.SelectMany(l => RunManifest.TensorsOf(l.Value).Where(t => t.Tensor == "weight")
                .Select(t => (l.Key, Count: t.Shape.Aggregate(1L, (n, d) => n * d))))
            .ToDictionary(x => x.Key, x => x.Count);
        if (points.Where(p => !p.IsPlain).SelectMany(p => p.Layers).FirstOrDefault(l => !weights.ContainsKey(l)) is { } missing)
        {
            var file = RunLayout.Manifest(run);
            throw new ArtifactException($"{file}: lists no weight of layer '{missing}'", file);
        }
        return weights;
    }

    /// <summary>The layers with weights of the fully-connected models the grid trains (fc1…fcN, out).</summary>
    public static string[] SmoothableLayers(string model) => model switch
    {
        "mlp2" => ["fc1", "fc2", "out"],
        "mlp3" => ["fc1", "fc2", "fc3", "out"],
        _ => throw new SettingException(nameof(Protocol.Model), "", $"the partial-entropy grid trains mlp2 or mlp3, not '{model}'"),
    };

    /// <summary>
    /// Refuses settings out of range and a grid that would fail, or collide, only after some of it has
    /// trained; throws <see cref="SettingException"/> naming the setting (a property of
    /// <see cref="Protocol"/>, or <see cref="Grid"/> and <see cref="SmoothingsAndRadii"/> for the grid as a
    /// whole). <see cref="Run"/> calls it first.
    /// </summary>
    public static void Validate(Protocol p)
    {
        if (p.Dataset is not ("mnist" or "mnist-10k" or "fashion-mnist"))
            throw new SettingException(nameof(Protocol.Dataset), "", $"the partial-entropy grid runs on mnist, mnist-10k or fashion-mnist, not '{p.Dataset}'");
        if (p.Runs < 1) throw new SettingException(nameof(Protocol.Runs), "", $"must be at least 1, got {p.Runs}");
        if (p.Epochs < 1) throw new SettingException(nameof(Protocol.Epochs), "", $"must be at least 1, got {p.Epochs}");
        if (!(p.Lr > 0) || double.IsInfinity(p.Lr)) throw new SettingException(nameof(Protocol.Lr), "", $"must be positive, got {p.Lr}");
        if (p.Losses.FirstOrDefault(l => l is not ("pla" or "plea")) is { } badLoss)
            throw new SettingException(nameof(Protocol.Losses), "", $"'{badLoss}' is not pla or plea");
        foreach (var radius in p.Radii)
            if (!(radius > 0) || double.IsInfinity(radius)) throw new SettingException(nameof(Protocol.Radii), "", $"each R must be positive, got {radius}");
        if (p.Jobs < 1) throw new SettingException(nameof(Protocol.Jobs), "", $"must be at least 1, got {p.Jobs}");
        // The thread count is part of a run's configuration (a resumed run must match it), so it is
        // stated rather than derived from Jobs and the machine's cores.
        if (p.Jobs > 1 && p.Threads < 1) throw new SettingException(nameof(Protocol.Jobs), "", "give {0} too: each of the trainings run at once uses that many threads", nameof(Protocol.Threads));
        var layers = SmoothableLayers(p.Model);
        foreach (var choice in p.Smoothings)
        {
            if (choice.Length == 0 || choice.Any(string.IsNullOrWhiteSpace))
                throw new SettingException(nameof(Protocol.Smoothings), "", $"'{string.Join("+", choice)}' names an empty layer");
            if (choice.FirstOrDefault(l => !layers.Contains(l)) is { } unknown)
                throw new SettingException(nameof(Protocol.Smoothings), "", $"unknown layer '{unknown}' (layers of {p.Model} with weights: {string.Join(", ", layers)})");
        }
        if (Points(p).GroupBy(point => point.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new SettingException(Grid, "", $"the grid holds {twice.Key} twice; give each loss, choice of layers and radius once");
        if (p.Samples < 1) throw new SettingException(nameof(Protocol.Samples), "", $"must be at least 1, got {p.Samples}");
        if (p.Losses.Length > 0 && (p.Smoothings.Length == 0 || p.Radii.Length == 0))
            throw new SettingException(SmoothingsAndRadii, "", "a smoothed loss needs at least one choice of layers and one radius");
    }

    /// <summary>One run's outcome from its metrics and gradient noise (pure; <see cref="ArgumentException"/> for metrics without a trained epoch).</summary>
    public static Outcome Measure(Point point, int seed, IReadOnlyList<MetricsRow> metrics, IReadOnlyList<GradientNoiseRow> gradNoise)
    {
        var trained = metrics.Where(m => m.Epoch > 0).ToList();
        if (trained.Count == 0) throw new ArgumentException($"{point.Name}, seed {seed}: the metrics hold no trained epoch", nameof(metrics));
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
        var summaries = outcomes.GroupBy(o => o.Point.Name).Select(g =>
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
        var holm = MultipleTests.Holm(summaries.Select(x => x.FinalAgainstPlain?.TPValue ?? double.NaN).ToArray());
        return summaries.Select((x, i) => x with { FinalHolmTPValue = holm[i] }).ToList();
    }

    /// <summary>
    /// A point's dose: the expected squared length of its displacement, E‖δ‖² = R²/3 per smoothed
    /// weight (each coordinate uniform on [−R, R]), summed over its layers' weights
    /// (<paramref name="weights"/>: weights per layer). Smoothing two layers of the same size at R has
    /// twice the dose of one; at R/√2 the same. <see cref="ArgumentException"/> for a layer
    /// <paramref name="weights"/> lacks (<see cref="WeightsPerLayer"/> checks a run's).
    /// </summary>
    public static double Dose(Point point, IReadOnlyDictionary<string, long> weights) =>
        point.IsPlain ? 0 : point.Radius * point.Radius / 3 * point.Layers.Sum(l => weights.TryGetValue(l, out var n) ? n
            : throw new ArgumentException($"{point.Name}: no weight count for layer '{l}'", nameof(weights)));

    /// <summary>Pairs two points' runs by seed on final test accuracy, in points, A − B (null when no seed is shared).</summary>
    static PairedComparison? PairFinal(IReadOnlyList<Outcome> a, IReadOnlyList<Outcome> b)
    {
        var bySeed = b.ToDictionary(o => o.Seed);
        var pairs = a.Where(o => bySeed.ContainsKey(o.Seed)).OrderBy(o => o.Seed).ToList();
        return pairs.Count == 0 ? null
            : PairedTests.Compare(pairs.Select(o => 100 * o.FinalTestAccuracy).ToArray(), pairs.Select(o => 100 * bySeed[o.Seed].FinalTestAccuracy).ToArray());
    }

    /// <summary>Adjusts a family's t p-values together (Holm) and attaches the doses.</summary>
    static IReadOnlyList<PointComparison> Family(List<(Point A, Point B, PairedComparison C)> rows, IReadOnlyDictionary<string, long> weights)
    {
        var holm = MultipleTests.Holm(rows.Select(r => r.C.TPValue).ToArray());
        return rows.Select((r, i) => new PointComparison(r.A.Loss, r.A, r.B, r.C, holm[i], Dose(r.A, weights), Dose(r.B, weights))).ToList();
    }

    /// <summary>
    /// Points of one loss whose doses are equal (within 0.1 %) but whose layers differ, paired by seed on
    /// final test accuracy, Holm-adjusted together: which layers to smooth, with the amount of
    /// perturbation held fixed (pure). Smoothing fc1+fc2 at R/√2 against fc1 or fc2 alone at R is such a pair.
    /// </summary>
    public static IReadOnlyList<PointComparison> AtEqualDose(IReadOnlyList<Outcome> outcomes, IReadOnlyDictionary<string, long> weights)
    {
        var points = outcomes.Where(o => !o.Point.IsPlain).GroupBy(o => o.Point.Name).Select(g => (g.First().Point, Runs: g.ToList())).ToList();
        var rows = new List<(Point, Point, PairedComparison)>();
        for (int i = 0; i < points.Count; i++)
            for (int j = i + 1; j < points.Count; j++)
            {
                var (a, b) = (points[i], points[j]);
                if (a.Point.Loss != b.Point.Loss || a.Point.LayersText == b.Point.LayersText) continue;
                double da = Dose(a.Point, weights), db = Dose(b.Point, weights);
                if (Math.Abs(da - db) > 1e-3 * Math.Max(da, db)) continue;
                // The single layer first: "fc1 − fc1+fc2" reads as what smoothing one layer gains.
                var (first, second) = a.Point.Layers.Length <= b.Point.Layers.Length ? (a, b) : (b, a);
                if (PairFinal(first.Runs, second.Runs) is { } c) rows.Add((first.Point, second.Point, c));
            }
        return Family(rows, weights);
    }

    /// <summary>
    /// Every two choices of layers at the same loss and radius, paired by seed on final test accuracy
    /// (percentage points, A − B, A the earlier choice of the grid), Holm-adjusted over all of them: the
    /// paper's comparison of which layers to smooth, at the same radius — so at different doses when
    /// the choices hold different numbers of weights (pure; <see cref="AtEqualDose"/> holds the dose fixed).
    /// </summary>
    public static IReadOnlyList<PointComparison> BetweenSmoothings(IReadOnlyList<Outcome> outcomes, IReadOnlyDictionary<string, long> weights)
    {
        var rows = new List<(Point, Point, PairedComparison)>();
        foreach (var cell in outcomes.Where(o => !o.Point.IsPlain).GroupBy(o => (o.Point.Loss, o.Point.Radius)))
        {
            var choices = cell.GroupBy(o => o.Point.LayersText).Select(g => (g.First().Point, Runs: g.ToList())).ToList();
            for (int i = 0; i < choices.Count; i++)
                for (int j = i + 1; j < choices.Count; j++)
                    if (PairFinal(choices[i].Runs, choices[j].Runs) is { } c) rows.Add((choices[i].Point, choices[j].Point, c));
        }
        return Family(rows, weights);
    }

    static void WriteOutcomes(string path, IReadOnlyList<Outcome> o) =>
        Table.Write(path, TableName,
            Column.Strings("point", o.Select(x => x.Point.Name).ToArray()),
            Column.Strings("loss", o.Select(x => x.Point.Loss).ToArray()),
            Column.Strings("layers", o.Select(x => x.Point.LayersText).ToArray()),
            Column.Doubles("radius", o.Select(x => x.Point.Radius).ToArray()),
            Column.Ints("seed", o.Select(x => x.Seed).ToArray()),
            Column.Doubles("best_test_accuracy", o.Select(x => x.BestTestAccuracy).ToArray()),
            Column.Ints("best_epoch", o.Select(x => x.BestEpoch).ToArray()),
            Column.Doubles("final_test_accuracy", o.Select(x => x.FinalTestAccuracy).ToArray()),
            Column.Doubles("final_test_loss", o.Select(x => x.FinalTestLoss).ToArray()),
            Column.Doubles("final_train_loss", o.Select(x => x.FinalTrainLoss).ToArray()),
            Column.Doubles("train_seconds", o.Select(x => x.TrainSeconds).ToArray()));

    static void WritePeaks(string path, IReadOnlyList<Outcome> outcomes)
    {
        var rows = outcomes.SelectMany(o => o.SignalPeaks.Select(peak => (o, peak))).ToList();
        Table.Write(path, PeaksName,
            Column.Strings("point", rows.Select(r => r.o.Point.Name).ToArray()),
            Column.Ints("seed", rows.Select(r => r.o.Seed).ToArray()),
            Column.Strings("layer", rows.Select(r => r.peak.Layer).ToArray()),
            Column.Ints("peak_epoch", rows.Select(r => r.peak.Epoch).ToArray()),
            Column.Doubles("peak_signal", rows.Select(r => r.peak.Signal).ToArray()));
    }

    static void WriteComparisons(string path, IReadOnlyList<PointComparison> between, IReadOnlyList<PointComparison> equalDose)
    {
        var rows = between.Select(c => ("same radius", c)).Concat(equalDose.Select(c => ("equal dose", c))).ToList();
        Table.Write(path, ComparisonsName,
            Column.Strings("family", rows.Select(r => r.Item1).ToArray()),
            Column.Strings("loss", rows.Select(r => r.c.Loss).ToArray()),
            Column.Strings("point_a", rows.Select(r => r.c.A.Name).ToArray()),
            Column.Strings("point_b", rows.Select(r => r.c.B.Name).ToArray()),
            Column.Doubles("dose_a", rows.Select(r => r.c.DoseA).ToArray()),
            Column.Doubles("dose_b", rows.Select(r => r.c.DoseB).ToArray()),
            Column.Ints("pairs", rows.Select(r => r.c.Comparison.Runs).ToArray()),
            Column.Doubles("final_a_minus_b_points", rows.Select(r => r.c.Comparison.MeanDifference).ToArray()),
            Column.Doubles("sd_points", rows.Select(r => r.c.Comparison.StandardDeviation).ToArray()),
            Column.Doubles("low95", rows.Select(r => r.c.Comparison.Low95).ToArray()),
            Column.Doubles("high95", rows.Select(r => r.c.Comparison.High95).ToArray()),
            Column.Doubles("t_p_value", rows.Select(r => r.c.Comparison.TPValue).ToArray()),
            Column.Doubles("holm_t_p_value", rows.Select(r => r.c.HolmTPValue).ToArray()),
            Column.Doubles("wilcoxon_p_value", rows.Select(r => r.c.Comparison.WilcoxonPValue).ToArray()));
    }

    static void WriteSummaries(string path, IReadOnlyList<Summary> s)
    {
        static double Of(PairedComparison? c, Func<PairedComparison, double> f) => c is null ? double.NaN : f(c);
        Table.Write(path, SummaryName,
            Column.Strings("point", s.Select(x => x.Point.Name).ToArray()),
            Column.Strings("loss", s.Select(x => x.Point.Loss).ToArray()),
            Column.Strings("layers", s.Select(x => x.Point.LayersText).ToArray()),
            Column.Doubles("radius", s.Select(x => x.Point.Radius).ToArray()),
            Column.Ints("runs", s.Select(x => x.Runs).ToArray()),
            Column.Doubles("best_test_accuracy_mean", s.Select(x => x.BestMean).ToArray()),
            Column.Doubles("best_test_accuracy_sd", s.Select(x => x.BestStd).ToArray()),
            Column.Doubles("final_test_accuracy_mean", s.Select(x => x.FinalMean).ToArray()),
            Column.Doubles("final_test_accuracy_sd", s.Select(x => x.FinalStd).ToArray()),
            Column.Doubles("best_minus_ce_points", s.Select(x => Of(x.BestAgainstPlain, c => c.MeanDifference)).ToArray()),
            Column.Doubles("best_minus_ce_low95", s.Select(x => Of(x.BestAgainstPlain, c => c.Low95)).ToArray()),
            Column.Doubles("best_minus_ce_high95", s.Select(x => Of(x.BestAgainstPlain, c => c.High95)).ToArray()),
            Column.Doubles("best_minus_ce_t_p_value", s.Select(x => Of(x.BestAgainstPlain, c => c.TPValue)).ToArray()),
            Column.Doubles("best_minus_ce_wilcoxon_p_value", s.Select(x => Of(x.BestAgainstPlain, c => c.WilcoxonPValue)).ToArray()),
            Column.Doubles("final_minus_ce_points", s.Select(x => Of(x.FinalAgainstPlain, c => c.MeanDifference)).ToArray()),
            Column.Doubles("final_minus_ce_low95", s.Select(x => Of(x.FinalAgainstPlain, c => c.Low95)).ToArray()),
            Column.Doubles("final_minus_ce_high95", s.Select(x => Of(x.FinalAgainstPlain, c => c.High95)).ToArray()),
            Column.Doubles("final_minus_ce_t_p_value", s.Select(x => Of(x.FinalAgainstPlain, c => c.TPValue)).ToArray()),
            Column.Doubles("final_minus_ce_holm_t_p_value", s.Select(x => x.FinalHolmTPValue).ToArray()));
    }

    static string Markdown(Protocol p, IReadOnlyList<Outcome> outcomes, IReadOnlyList<Summary> summaries,
        IReadOnlyList<PointComparison> between, IReadOnlyList<PointComparison> equalDose, IReadOnlyList<string> figures)
    {
        static string Pct(double v) => double.IsNaN(v) ? "—" : (100 * v).ToString("F2", CultureInfo.InvariantCulture);
        static string Pts(double v) => double.IsNaN(v) ? "—" : v.ToString("+0.00;−0.00;0.00", CultureInfo.InvariantCulture);
        var seeds = outcomes.Select(o => o.Seed).Distinct().Count();
        var md = new StringBuilder("# The partial-entropy paper's fully-connected grid (Figs 3–5)\n\n");
        md.Append(CultureInfo.InvariantCulture, $"{p.Model} on {p.Dataset}{(p.TrainLimit is { } t ? $" (the first {t} training images)" : "")}, {p.Epochs} epochs, SGD lr {Number(p.Lr)} momentum {Number(p.Momentum)}, batch {p.BatchSize}, no weight decay or dropout, Kaiming initialisation; ")
          .Append(CultureInfo.InvariantCulture, $"smoothed losses with y = {p.Samples} displaced copies in the hyper-cube of half-side R on the named layers' weights. Seeds per point: up to {seeds} ({outcomes.Count} runs in all).\n\n")
          .Append("Accuracy in %, mean ± sample sd over a point's seeds. The outcome is the **final** test accuracy (the last epoch's); the best epoch's is picked on the test set itself, so it is shown last and is biased upwards. \"final − ce\" is the paired difference from plain cross-entropy over the seeds both have (\"pairs\"), in points, with its 95 % interval, the two-sided paired t p-value and that p-value Holm-adjusted over every row of the table.\n\n")
          .Append("| point | runs | final test accuracy | pairs | final − ce | 95 % interval | p | Holm p | best epoch's accuracy | best − ce |\n|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var s in summaries)
        {
            var f = s.FinalAgainstPlain;
            md.Append(CultureInfo.InvariantCulture, $"| {s.Point.Name} | {s.Runs} | {Pct(s.FinalMean)} ± {Pct(s.FinalStd)} | {f?.Runs.ToString(CultureInfo.InvariantCulture) ?? "—"} | {Pts(f?.MeanDifference ?? double.NaN)} | {(f is null ? "—" : $"[{f.Low95:F2}, {f.High95:F2}]")} | {Aggregation.P(f?.TPValue ?? double.NaN)} | {Aggregation.P(s.FinalHolmTPValue)} | {Pct(s.BestMean)} ± {Pct(s.BestStd)} | {Pts(s.BestAgainstPlain?.MeanDifference ?? double.NaN)} |\n");
        }
        void Comparisons(string heading, IReadOnlyList<PointComparison> rows)
        {
            if (rows.Count == 0) return;
            md.Append(heading).Append("\n\n| A − B | dose A | dose B | pairs | mean ± sd | 95 % interval | t p | Holm p | Wilcoxon p |\n|---|---|---|---|---|---|---|---|---|\n");
            foreach (var c in rows)
                md.Append(CultureInfo.InvariantCulture, $"| {c.A.Name} − {c.B.Name} | {c.DoseA:G3} | {c.DoseB:G3} | {c.Comparison.Runs} | {Pts(c.Comparison.MeanDifference)} ± {c.Comparison.StandardDeviation:F2} | [{c.Comparison.Low95:F2}, {c.Comparison.High95:F2}] | {Aggregation.P(c.Comparison.TPValue)} | {Aggregation.P(c.HolmTPValue)} | {Aggregation.P(c.Comparison.WilcoxonPValue)} |\n");
            md.Append('\n');
        }
        md.Append('\n');
        Comparisons("Between choices of layers at the same loss and radius (final test accuracy, A − B in points over the seeds both have; the paper finds the second layer alone best and both layers worst). At one radius, a choice of more weights is also a larger perturbation: the dose, E‖δ‖² = R²/3 per smoothed weight, is given for each side; Holm p is adjusted over the rows of this table.", between);
        Comparisons("At equal dose: choices of layers whose smoothing perturbs the weights by the same E‖δ‖² (e.g. both layers at R/√2 against one layer of the same size at R), final test accuracy, A − B in points; Holm p is adjusted over the rows of this table.", equalDose);
        var plainPeaks = outcomes.Where(o => o.Point.IsPlain).SelectMany(o => o.SignalPeaks).GroupBy(k => k.Layer)
            .Select(g => $"{g.Key} at epoch {string.Join(", ", g.Select(k => k.Epoch))}").ToList();
        if (plainPeaks.Count > 0)
            md.Append("\nThe training signal s_I of plain cross-entropy peaks (per seed): ").Append(string.Join("; ", plainPeaks)).Append(".\n");
        md.Append('\n');
        foreach (var f in figures) md.Append($"![{Path.GetFileNameWithoutExtension(f)}]({f})\n\n");
        return md.ToString();
    }
}
