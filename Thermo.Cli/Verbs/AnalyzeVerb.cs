using Thermo.Trainer;
using System.CommandLine;
using System.Globalization;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Analysis.Statistics;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo analyze RUN...</c>: temperatures, drift/oscillation, MSD and fits from a run directory's
/// files alone (no model, no retraining). Every run is analysed before any output is written.
/// </summary>
public static class AnalyzeVerb
{
    public static Command Build()
    {
        var runs = new Argument<string[]>("run") { Description = "Run directories; or, with --out, one checkpoint series: a directory of checkpoints (PyTorch, Lightning, Hugging Face) or the checkpoint files", Arity = ArgumentArity.OneOrMore };
        var groups = new Option<string>("--groups") { Description = "Temperature groups: layer, filter (= unit = row) or weight", DefaultValueFactory = _ => "filter" };
        var layers = new Option<string>("--layers") { Description = "Layers to analyse, comma-separated (default: every layer with weights)" };
        var bias = new Option<bool>("--bias") { Description = "Include each unit's bias in its group" };
        var convention = new Option<string>("--convention") { Description = "kinetic (½·m·v²/k_B) or mean-square (v²)", DefaultValueFactory = _ => "kinetic" };
        var mass = new Option<double>("--mass") { Description = "Particle mass m", DefaultValueFactory = _ => 1.0 };
        var boltzmann = new Option<double>("--kb") { Description = "Boltzmann constant k_B", DefaultValueFactory = _ => 1.0 };
        var msdLayers = new Option<string>("--msd-layers") { Description = $"Layers whose filters get MSD curves and fits, or 'none' (default: the first analysed layer whose trajectories, weights × snapshots, are at most {Analyzer.DefaultMsdValues >> 20}M values, e.g. not a language model's embedding; none if no layer is that small)" };
        var fitLags = new Option<string>("--fit-lags") { Description = "Lag range a:b of the α and D fits (default: α over 1..n/2, D over 1..n/4)" };
        var noManifest = new Option<bool>("--no-manifest") { Description = "Analyse the snapshots without run.json (absent, empty or corrupt): every snapshot file there, its spacing inferred from the epochs in the file names, so a missing snapshot is noticed only where it makes the window's spacing uneven; the window rule in the output and tables says so" };
        var steps = new Option<bool>("--steps") { Description = "Analyse the per-step snapshots (train --step-snapshots K) with Δt = one optimiser step; windows in global steps, auto = every step snapshot; writes RUN/analysis-steps/" };
        var checkpoints = new CheckpointFlags();
        var command = new Command("analyze", "Temperatures, drift and oscillation, MSD and diffusion of runs (writes RUN/analysis/*.parquet) or, with --out, of a checkpoint series in place")
        {
            runs, groups, layers, bias, convention, mass, boltzmann, msdLayers, fitLags, steps, noManifest, checkpoints.Out,
            checkpoints.Exclude, checkpoints.UnitsAlongDim1, checkpoints.AcceptGaps,
        };
        var window = new WindowFlag(command, "Equilibrium window: auto, last:N (the last N epochs, or steps with --steps) or a:b (snapshots)", "auto");
        command.SetAction(parse =>
        {
            var msd = parse.GetValue(msdLayers);
            var lags = parse.GetValue(fitLags);
            var options = Analyzer.Options(
                Analyzer.ParseWindow(window.Value(parse)!),
                Analyzer.ParseGrouping(parse.GetValue(groups)!),
                Flags.List(parse.GetValue(layers)),
                parse.GetValue(bias),
                new Physics(
                    parse.GetValue(convention) switch
                    {
                        "kinetic" => TemperatureConvention.Kinetic,
                        "mean-square" => TemperatureConvention.MeanSquare,
                        var other => throw new ThermoException($"--convention: unknown convention '{other}' (known: kinetic, mean-square)"),
                    },
                    Positive("--mass", parse.GetValue(mass)), Positive("--kb", parse.GetValue(boltzmann)), 1.0),
                msd == "none" ? [] : Flags.List(msd),
                lags is null ? null : Analyzer.ParseFitLags(lags))
                .WithSpacing(parse.GetValue(noManifest) ? SnapshotSpacing.InferredFromFiles : SnapshotSpacing.FromManifest);

            var progress = new ConsoleProgress();
            var dirs = parse.GetValue(runs)!;
            if (parse.GetValue(checkpoints.Out) is { } outDirectory)
            {
                if (parse.GetValue(steps)) throw new ThermoException("--steps: applies to Thermo runs; a checkpoint series' time unit comes from its layout");
                if (parse.GetValue(noManifest)) throw new ThermoException("--no-manifest: applies to Thermo runs; a checkpoint series has no run.json");
                return AnalyzeCheckpoints(dirs, outDirectory, checkpoints, parse, options, progress);
            }
            if (checkpoints.GivenWithoutOut(parse) is { } flag)
                throw new ThermoException($"{flag}: applies to a checkpoint series, analysed with --out DIR");
            foreach (var run in dirs)
                if (CheckpointRuns.IsCheckpointInput(run))
                    throw new ThermoException($"{run}: holds checkpoints, not a Thermo run; analyse them in place with --out DIR (nothing is written beside them), or turn them into a run with thermo import");
            var results = new List<AnalysisResult>();
            foreach (var run in dirs)
            {
                if (!Directory.Exists(run)) throw new ThermoException($"{run}: run directory does not exist");
                if (!parse.GetValue(noManifest))
                {
                    if (!File.Exists(RunLayout.Manifest(run)))
                        throw new ThermoException($"{run}: no {RunLayout.ManifestFile}, so the snapshots the run must have are unknown; --no-manifest analyses the snapshot files there, inferring their spacing");
                    try { ManifestFile.Check(run); }
                    catch (ArtifactException e) { throw new ThermoException($"{e.Message}; --no-manifest analyses the snapshots alone"); }
                }
            }
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // Every run is analysed before any table is written, so bad input in the last run leaves
            // the first ones untouched.
            for (int i = 0; i < dirs.Length; i++)
            {
                progress.Message($"analysing {dirs[i]} ({i + 1}/{dirs.Length}{(i > 0 ? $", ETA {clock.Elapsed / i * (dirs.Length - i):mm\\:ss}" : "")}) …");
                var started = System.Diagnostics.Stopwatch.StartNew();
                int shown = 0;
                results.Add(Analyzer.Run(dirs[i], options, parse.GetValue(steps) ? TimeUnit.Step : TimeUnit.Epoch, (done, total) =>
                {
                    // about ten lines per run, each with the run's ETA
                    if (done == 0 || done * 10 / total <= shown) return;
                    shown = done * 10 / total;
                    progress.Message($"  {done}/{total} snapshot files read; ETA {started.Elapsed / done * (total - done):mm\\:ss}");
                }));
            }
            foreach (var result in results) Analyzer.Write(result);
            CliOutput.Result(results.Select(r => Json(r, Tables(r))).ToList(), () => { foreach (var result in results) PrintSummary(result, Tables(result), options.MsdByDefault); });
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>One checkpoint series analysed in place, its tables and tensors.json written to <paramref name="outDirectory"/>.</summary>
    static int AnalyzeCheckpoints(string[] inputs, string outDirectory, CheckpointFlags checkpoints, ParseResult parse, AnalysisOptions options, ConsoleProgress progress)
    {
        CheckpointRuns.CheckAnalysisOutput(inputs, outDirectory);
        progress.Message($"analysing the checkpoint series {inputs[0]}{(inputs.Length > 1 ? $" … ({inputs.Length} inputs)" : "")} in place …");
        var started = System.Diagnostics.Stopwatch.StartNew();
        int shown = 0;
        var (result, contents) = CheckpointRuns.Analyze(inputs, checkpoints.ReadOptions(parse), parse.GetValue(checkpoints.AcceptGaps), options, (done, total) =>
        {
            // about ten lines, each with the ETA
            if (done == 0 || done * 10 / total <= shown) return;
            shown = done * 10 / total;
            progress.Message($"  {done}/{total} checkpoints read; ETA {started.Elapsed / done * (total - done):mm\\:ss}");
        });
        CheckpointRuns.WriteAnalysis(inputs, outDirectory, result, contents);
        CliOutput.Result(new { analysis = Json(result, outDirectory), analysed = contents.Tensors.Select(t => t.Key), dropped = contents.Dropped.Select(d => new { key = d.StoredKey, reason = d.Reason }) }, () =>
        {
            PrintSummary(result, outDirectory, options.MsdByDefault);
            Console.WriteLine($"  analysed {contents.Tensors.Length} tensors; not analysed: {(contents.Dropped.Length == 0 ? "none" : string.Join(", ", contents.Dropped.Select(d => $"{d.StoredKey} ({d.Reason})")))}");
        });
        return ExitCodes.Ok;
    }

    /// Where the result's tables go: RUN/analysis, or RUN/analysis-steps for the per-step analysis.
    static string Tables(AnalysisResult r) => Analyzer.TablesDirectory(r);

    static double Positive(string flag, double value) =>
        value > 0 && double.IsFinite(value) ? value : throw new ThermoException($"{flag}: must be positive, got {value}");

    /// <summary>A run's analysis for --json: window, layers, and each group with its ranks and fits.</summary>
    static object Json(AnalysisResult r, string tables)
    {
        var diffusion = r.Diffusion.ToDictionary(d => (d.Key.Layer, d.Key.Unit));
        return new
        {
            run = r.Run,
            window = new { from = r.Window.From, to = r.Window.To, velocities = r.Window.Velocities, rule = r.Window.Rule, spacing = r.Window.Spacing },
            convention = r.Physics.Describe,
            layers = r.Layers.Select(l => new { layer = l.Key.Layer, weights = l.Temperature.Weights, temperature = l.Temperature.Temperature, drift_temperature = l.Temperature.Drift, oscillation_temperature = l.Temperature.Oscillation, diffusive_rate = l.DiffusiveRate }),
            groups = r.Groups.Select(g => new
            {
                layer = g.Key.Layer, unit = g.Key.Unit, weight = g.Key.Weight, temperature = g.Temperature.Temperature,
                drift_temperature = g.Temperature.Drift, oscillation_temperature = g.Temperature.Oscillation, l1_norm = g.L1Norm,
                rank = g.Rank, oscillation_rank = g.OscillationRank,
                alpha = diffusion.TryGetValue((g.Key.Layer, g.Key.Unit), out var d) && g.Key.Weight == -1 ? d.Alpha.Slope : (double?)null,
                diffusion_constant = d is not null && g.Key.Weight == -1 ? d.Diffusion.Slope : (double?)null,
            }),
            spearman_temperature_l1 = r.TemperatureL1Spearman.Select(s => new { layer = s.Layer, rho = s.Rho, units = s.Units, p_value = PairedTests.SpearmanPValue(s.Rho, s.Units) }),
            time_unit = TimeUnits.Name(r.TimeUnit),
            spacing = r.Window.Spacing,
            source = r.Source,
            tables,
        };
    }

    /// <summary>Units shown at each end of a layer's ranking in the text summary.</summary>
    const int ShownUnits = 10;

    static string G(double v) => v.ToString("0.000e+00", CultureInfo.InvariantCulture);

    static void PrintSummary(AnalysisResult r, string tables, bool msdByDefault)
    {
        var unit = TimeUnits.Name(r.TimeUnit);
        var spacing = r.Window.IsEven
            ? $"Δt = {r.Window.Interval} {unit}{(r.Window.Interval == 1 ? "" : "s")}"
            : $"uneven Δt of {r.Window.Intervals.Min()}..{r.Window.Intervals.Max()} {unit}s, each velocity its own";
        Console.WriteLine($"{r.Run}: window {r.Window.From}..{r.Window.To} ({r.Window.Velocities} velocities, {spacing}; {r.Window.Rule}); T = {r.Physics.Describe}");
        var width = Math.Max(10, r.Layers.Max(l => l.Key.Layer.Length));
        Console.WriteLine($"  {"layer".PadRight(width)} {"weights",8} {"T",11} {"T_drift",11} {"T_osc",11} {"D",11}");
        foreach (var l in r.Layers)
            Console.WriteLine($"  {l.Key.Layer.PadRight(width)} {l.Temperature.Weights,8} {G(l.Temperature.Temperature),11} {G(l.Temperature.Drift),11} {G(l.Temperature.Oscillation),11} {G(l.DiffusiveRate),11}");
        var diffusion = r.Diffusion.ToDictionary(d => (d.Key.Layer, d.Key.Unit));
        var listed = r.Diffusion.Select(d => d.Key.Layer).Distinct().ToArray();
        if (listed.Length == 0 && r.Grouping == Grouping.Unit) listed = r.Layers.Take(1).Select(l => l.Key.Layer).ToArray();
        foreach (var layer in listed)
        {
            var rho = r.TemperatureL1Spearman.FirstOrDefault(s => s.Layer == layer)?.Rho ?? double.NaN;
            Console.WriteLine($"  {layer} filters, hottest first (Spearman of temperature vs L1 ranking: {rho:F2}):");
            Console.WriteLine($"  {"rank",5} {"unit",5} {"T",11} {"T_drift",11} {"T_osc",11} {"L1",9} {"alpha",6} {"D",11}");
            var units = r.Groups.Where(g => g.Key.Layer == layer && g.Key.Weight == -1 && g.Key.Unit >= 0).OrderBy(g => g.Rank).ToArray();
            // A terminal shows the ends of a long ranking (an embedding has tens of thousands of rows);
            // the table holds every unit.
            for (int i = 0; i < units.Length; i++)
            {
                if (units.Length > 2 * ShownUnits && i == ShownUnits)
                {
                    Console.WriteLine($"  {"…",5} {units.Length - 2 * ShownUnits} more units, every one in {RunLayout.TemperatureFile}");
                    i = units.Length - ShownUnits;
                }
                var g = units[i];
                diffusion.TryGetValue((layer, g.Key.Unit), out var d);
                Console.WriteLine($"  {g.Rank,5} {g.Key.Unit,5} {G(g.Temperature.Temperature),11} {G(g.Temperature.Drift),11} {G(g.Temperature.Oscillation),11} {g.L1Norm,9:F3} {d?.Alpha.Slope ?? double.NaN,6:F2} {G(d?.Diffusion.Slope ?? double.NaN),11}");
            }
        }
        // An MSD needs two lags; with one velocity there is none whatever the layers.
        if (msdByDefault && r.Diffusion.Length == 0 && r.Window.Velocities >= 2)
            Console.WriteLine($"  no MSD: no analysed layer's trajectories (weights × snapshots) fit in {Analyzer.DefaultMsdValues >> 20}M values, the default's limit; --msd-layers LAYER computes a layer's anyway");
        Console.WriteLine($"  tables: {tables}/{{{string.Join(",", RunLayout.AnalysisFiles.Select(Path.GetFileNameWithoutExtension))}}}.parquet");
    }
}
