using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Pipeline.Cluster;
using Thermo.Pipeline.Report;
using Thermo.Trainer;
using Thermo.Trainer.Training;

namespace Thermo.Pipeline.Protocols;

/// <summary>
/// Temperature against hyper-parameters (docs/THEORY.md, "Temperature vs hyper-parameters"; <c>thermo sweep</c>).
/// From a run's final (equilibrium) model, one ordinary run per grid value — each learning rate at the
/// run's batch size, each batch size at the run's learning rate — trained as a child <c>thermo train</c>
/// process (so several can run at once, and a killed sweep resumes), analysed over its last epochs,
/// and every layer's temperature fitted as T = c·x^β for x = η and x = 1/B.
/// </summary>
public static class Sweep
{
    /// <summary>The grid: the run to continue, the values, epochs per point, the window (0: half the epochs), processes at once, the directory (null: RUN/sweep),
    /// torch's threads in each training (0: the run's own, or the cores shared among the processes).
    /// With <paramref name="StepEpochs"/> K &gt; 0, each point also snapshots every optimiser step of its last K epochs and its
    /// temperatures are per step (Δt = one step, every step snapshot: the thermodynamic paper's protocol); the window is then unused.</summary>
    public sealed record Plan(string From, double[] LearningRates, double[] BatchSizes, int Epochs, int Equilibrium, int Jobs, string? Out, int Threads = 0, int StepEpochs = 0);

    /// <summary>The setting of an empty grid: the learning rates and the batch sizes together.</summary>
    public const string LearningRatesOrBatchSizes = "LearningRatesOrBatchSizes";

    /// <summary>The sweep directory's table of every grid point's layer temperatures.</summary>
    public const string TableFile = "sweep.parquet";
    /// <summary>The sweep directory's table of the fits (named as a run's analysis fits table).</summary>
    public const string FitsFile = RunLayout.FitsFile;

    /// <summary>
    /// One layer's fit T = c·x^β over one hyper-parameter's grid; for batch sizes (x = 1/B, three points
    /// or more) also T = a + b·x, the shape SGD's noise predicts (a = ½η²|ḡ|², b = ½η²σ² per weight).
    /// </summary>
    public sealed record Fit(string Parameter, string Layer, int Points, double Beta, double C, double R2,
        double AffineIntercept = double.NaN, double AffineSlope = double.NaN, double AffineR2 = double.NaN);

    /// <summary>One grid point: which hyper-parameter, its value, and x of the fit (η or 1/B).</summary>
    sealed record Point(string Parameter, double Value, double X, string Directory);

    /// <summary>
    /// Trains, analyses and fits the grid; <paramref name="thermo"/> makes the child process that runs
    /// <c>thermo</c> with the given arguments. Returns the directory, the window (last N epochs) and the fits.
    /// </summary>
    public static (string Directory, int Window, IReadOnlyList<Fit> Fits) Run(Plan plan, Func<IReadOnlyList<string>, ProcessStartInfo> thermo, ITrainingProgress progress)
    {
        var (dir, window, points, configs) = Prepare(plan);
        TrainAll(points, configs, plan.Jobs, thermo, progress);
        return Finish(dir, window, points, plan.StepEpochs > 0);
    }

    /// <summary>
    /// The grid as one Slurm array job (one task per grid point not yet trained) and a job after it
    /// running <paramref name="finish"/> — this sweep's own command with <c>--scheduler local</c>, which
    /// finds every point trained and analyses and fits them. <paramref name="thermo"/> is the command
    /// that runs <c>thermo</c> on the cluster's nodes.
    /// </summary>
    public static Submission Submit(Plan plan, IReadOnlyList<string> thermo, IReadOnlyList<string> finish, SlurmSettings slurm,
        Func<IReadOnlyList<string>, SlurmJobs.CommandResult?> sbatch, Func<IReadOnlyList<string>, SlurmJobs.CommandResult?> squeue)
    {
        // Before Prepare rewrites the configurations that queued tasks of an earlier submission would read.
        SlurmJobs.EnsureNothingQueued(plan.Out ?? Path.Combine(plan.From, "sweep"), squeue);
        var (dir, _, points, configs) = Prepare(plan with { Threads = slurm.CpusPerTask });
        var tasks = points.Where(p => RunManifest.TryLoadQuietly(p.Directory) is not { Status: RunStatus.Complete })
            .Select(p => new TrainingTask(ConfigPath(configs, p), p.Directory)).ToList();
        return SlurmJobs.Submit(dir, tasks, thermo, finish, slurm, sbatch, squeue);
    }

    /// <summary>Checks the plan and writes each grid point's configuration; the points, the window and the directories.</summary>
    static (string Directory, int Window, List<Point> Points, string Configs) Prepare(Plan plan)
    {
        var run = plan.From;
        var manifest = RunManifest.TryLoad(run) ?? throw new NoRunException(run, nameof(Plan.From));
        if (manifest.Status != RunStatus.Complete) throw new SettingException(nameof(Plan.From), "", $"{run} is not complete (last complete epoch {manifest.LastCompleteEpoch})");
        var snapshots = PruningLedger.IsEntry(run) ? SnapshotSeries.ListEpochFiles(run) : SnapshotSeries.EpochFiles(run, SnapshotSpacing.FromManifest);
        var finalSnapshot = snapshots.Where(f => f.Time == manifest.LastCompleteEpoch).Select(f => f.Path).FirstOrDefault()
            ?? throw new SettingException(nameof(Plan.From), "", $"{run} lacks its final snapshot (epoch {manifest.LastCompleteEpoch})");
        var lrValues = plan.LearningRates;
        var batchValues = plan.BatchSizes;
        if (lrValues.Length + batchValues.Length == 0) throw new SettingException(LearningRatesOrBatchSizes, "", "give at least one grid of values");
        if (batchValues.Any(b => b != Math.Floor(b) || b < 1)) throw new SettingException(nameof(Plan.BatchSizes), "", "batch sizes are positive integers");
        int n = plan.Epochs;
        if (n < 2) throw new SettingException(nameof(Plan.Epochs), "", $"need at least 2, got {n}");
        int window = plan.Equilibrium is var w && w > 0 ? w : Math.Max(1, n / 2);
        if (window > n) throw new SettingException(nameof(Plan.Equilibrium), "", $"last:{window} is longer than the {n} epochs of each grid point");
        int parallel = plan.Jobs is var j && j >= 1 ? j : throw new SettingException(nameof(Plan.Jobs), "", "must be positive");
        if (plan.StepEpochs < 0 || plan.StepEpochs > n) throw new SettingException(nameof(Plan.StepEpochs), "", $"must be within 0..{n} (the epochs of each grid point), got {plan.StepEpochs}");
        var dir = plan.Out ?? Path.Combine(run, "sweep");
        var points = lrValues.Select(v => new Point("lr", v, v, Path.Combine(dir, $"lr={Format(v)}")))
            .Concat(batchValues.Select(v => new Point("batch_size", v, 1 / v, Path.Combine(dir, $"batch-size={Format(v)}")))).ToList();
        var configs = Path.Combine(dir, "configs");
        Directory.CreateDirectory(configs);
        foreach (var p in points)
        {
            // The grid point's whole configuration, from the equilibrium model, as a file a
            // `thermo train --config` process (and a later resume) reads.
            var config = manifest.Config with
            {
                Epochs = n, InitFrom = Path.GetFullPath(finalSnapshot), LrStep = 0, StepSnapshotEpochs = plan.StepEpochs,
                Lr = p.Parameter == "lr" ? p.Value : manifest.Config.LearningRateAt(manifest.LastCompleteEpoch),
                BatchSize = p.Parameter == "batch_size" ? (int)p.Value : manifest.Config.BatchSize,
                Threads = plan.Threads > 0 ? plan.Threads : parallel > 1 ? Math.Max(1, Environment.ProcessorCount / parallel) : manifest.Config.Threads,
            };
            AtomicFiles.WriteAllText(ConfigPath(configs, p), JsonSerializer.Serialize(config, RunManifest.Json));
        }
        return (dir, window, points, configs);
    }

    /// <summary>Analyses every (trained) grid point over its last <paramref name="window"/> epochs and fits T = c·x^β per layer.</summary>
    static (string Directory, int Window, IReadOnlyList<Fit> Fits) Finish(string dir, int window, IReadOnlyList<Point> points, bool perStep)
    {
        var rows = new List<(Point Point, string Layer, double T)>();
        foreach (var p in points)
        {
            var options = AnalysisOptions.Default.WithGrouping(Grouping.Layer).WithMsdLayers([]);
            // Per step: every step snapshot (the last StepEpochs epochs), Δt = one optimiser step.
            var result = perStep
                ? Analyzer.Run(p.Directory, options.WithWindow(WindowSpec.Auto), TimeUnit.Step, null)
                : Analyzer.Run(p.Directory, options.WithWindow(WindowSpec.NewLast(window)));
            Analyzer.Write(result);
            rows.AddRange(result.Layers.Select(l => (p, l.Key.Layer, l.Temperature.Temperature)));
        }
        var fits = rows.GroupBy(r => (r.Point.Parameter, r.Layer)).Select(g =>
        {
            double[] x = g.Select(r => r.Point.X).ToArray(), t = g.Select(r => r.T).ToArray();
            var power = g.Count() >= 2 ? Fits.powerLaw(x, t) : null;
            // The SGD theory's shapes (RESULTS.md): T ∝ η² at fixed B, T = a + b/B at fixed η.
            var affine = g.Key.Parameter == "batch_size" && g.Count() >= 3 ? Fits.line(x, t) : null;
            return new Fit(g.Key.Parameter, g.Key.Layer, g.Count(), power?.Slope ?? double.NaN, power is null ? double.NaN : Math.Exp(power.Intercept), power?.RSquared ?? double.NaN,
                affine?.Intercept ?? double.NaN, affine?.Slope ?? double.NaN, affine?.RSquared ?? double.NaN);
        }).ToList();
        string unit = TimeUnits.Name(perStep ? TimeUnit.Step : TimeUnit.Epoch);
        Table.Write(Path.Combine(dir, TableFile), "sweep",
            Column.Strings("parameter", rows.Select(r => r.Point.Parameter).ToArray()),
            Column.Doubles("value", rows.Select(r => r.Point.Value).ToArray()),
            Column.Doubles("x", rows.Select(r => r.Point.X).ToArray()),
            Column.Strings("layer", rows.Select(r => r.Layer).ToArray()),
            Column.Doubles("temperature", rows.Select(r => r.T).ToArray()),
            Column.Strings("run", rows.Select(r => r.Point.Directory).ToArray()),
            Column.Strings("time_unit", rows.Select(_ => unit).ToArray()));
        Table.Write(Path.Combine(dir, FitsFile), "sweep_fits",
            Column.Strings("parameter", fits.Select(f => f.Parameter).ToArray()),
            Column.Strings("layer", fits.Select(f => f.Layer).ToArray()),
            Column.Ints("points", fits.Select(f => f.Points).ToArray()),
            Column.Doubles("beta", fits.Select(f => f.Beta).ToArray()),
            Column.Doubles("c", fits.Select(f => f.C).ToArray()),
            Column.Doubles("r_squared", fits.Select(f => f.R2).ToArray()),
            Column.Doubles("affine_intercept", fits.Select(f => f.AffineIntercept).ToArray()),
            Column.Doubles("affine_slope", fits.Select(f => f.AffineSlope).ToArray()),
            Column.Doubles("affine_r_squared", fits.Select(f => f.AffineR2).ToArray()),
            Column.Strings("time_unit", fits.Select(_ => unit).ToArray()));
        foreach (var parameter in fits.Select(f => f.Parameter).Distinct())
            SweepFigure.Write(Path.Combine(dir, $"temperature-vs-{(parameter == "lr" ? "lr" : "inverse-batch-size")}.png"), parameter,
                rows.Where(r => r.Point.Parameter == parameter).Select(r => (r.Layer, r.Point.X, r.T)).ToList(),
                fits.Where(f => f.Parameter == parameter).Select(f => (f.Layer, f.Beta, f.C, f.R2)).ToList());
        return (dir, window, fits);
    }

    static string Format(double v) => v.ToString("0.#######", CultureInfo.InvariantCulture);

    static string ConfigPath(string configs, Point p) => Path.Combine(configs, Path.GetFileName(p.Directory) + ".json");

    /// <summary>Trains every grid point not yet complete, <paramref name="parallel"/> child processes at
    /// a time: a fresh one from its config file, an interrupted one with --resume.</summary>
    static void TrainAll(IReadOnlyList<Point> points, string configs, int parallel, Func<IReadOnlyList<string>, ProcessStartInfo> thermo, ITrainingProgress progress)
    {
        var todo = new Queue<Point>();
        foreach (var p in points)
        {
            var existing = RunManifest.TryLoadQuietly(p.Directory);
            if (existing is { Status: RunStatus.Complete }) progress.Message($"reusing {p.Directory} (complete)");
            else todo.Enqueue(p);
        }
        var clock = Stopwatch.StartNew();
        int total = todo.Count, finished = 0;
        var running = new List<(Point Point, Process Process, Task<string> Error)>();
        while (todo.Count > 0 || running.Count > 0)
        {
            while (todo.Count > 0 && running.Count < parallel)
            {
                var p = todo.Dequeue();
                var resume = RunManifest.TryLoadQuietly(p.Directory) is { LastCompleteEpoch: >= 0 };
                var args = RunDirectory.ChildArguments(ConfigPath(configs, p), p.Directory, resume ? RunDirectoryMode.Resume : RunDirectoryMode.Replace);
                var process = Process.Start(thermo(args))!;
                running.Add((p, process, process.StandardError.ReadToEndAsync()));
                _ = process.StandardOutput.ReadToEndAsync();
                progress.Message($"training {p.Directory}{(resume ? " (resuming)" : "")}");
            }
            var done = running.FirstOrDefault(r => r.Process.HasExited);
            if (done.Process is null) { Thread.Sleep(200); continue; }
            running.Remove(done);
            if (done.Process.ExitCode != 0)
            {
                foreach (var r in running) r.Process.Kill(true);
                throw new ThermoException($"sweep: training {done.Point.Directory} failed: {done.Error.Result.Trim()}");
            }
            finished++;
            progress.Message($"  {finished}/{total} grid points trained after {clock.Elapsed:hh\\:mm\\:ss}; ETA {clock.Elapsed / finished * (total - finished):hh\\:mm\\:ss}");
        }
    }
}
