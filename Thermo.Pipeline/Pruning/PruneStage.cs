using System.Diagnostics;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Trainer;
using Thermo.Trainer.Evaluation;
using Thermo.Trainer.Models;
using Thermo.Trainer.Training;

namespace Thermo.Pipeline.Pruning;

/// <summary>Which layers get prune-fraction curves.</summary>
public enum CurveScope
{
    /// <summary>No curves.</summary>
    None,
    /// <summary>The pruned layer's.</summary>
    Layer,
    /// <summary>Every convolution layer's.</summary>
    All,
}

/// <summary>Parsing a <see cref="CurveScope"/>: the one place its words are read.</summary>
public static class CurveScopes
{
    /// <summary>none, layer or all; anything else raises <see cref="SettingException"/> on <see cref="PruneSettings.Curves"/>.</summary>
    public static CurveScope Parse(string text) => text switch
    {
        "none" => CurveScope.None,
        "layer" => CurveScope.Layer,
        "all" => CurveScope.All,
        _ => throw new SettingException(nameof(PruneSettings.Curves), "", $"'{text}' is not none, layer or all"),
    };
}

/// <summary>What <c>thermo prune</c> does, independent of how it was asked (the reproduction reuses it).</summary>
public sealed record PruneSettings
{
    public string Layer { get; init; } = "conv1";
    public IReadOnlyList<Criterion> Criteria { get; init; } = Enum.GetValues<Criterion>();
    public int K { get; init; } = 2;
    public int M { get; init; } = 3;
    public int RandomDraws { get; init; } = 5;
    /// <summary>Which layers get prune-fraction curves.</summary>
    public CurveScope Curves { get; init; } = CurveScope.Layer;
    /// <summary>Analyse runs that have no analysis with this window first (null: refuse them).</summary>
    public string? AnalyzeWindow { get; init; }
    /// <summary>Also remove the k hottest filters physically, export the smaller model and compare it.</summary>
    public bool Structural { get; init; }
    /// <summary>Fine-tune the structurally pruned model for this many epochs (0: no).</summary>
    public int FinetuneEpochs { get; init; }
}

/// <summary>
/// The prune stage: zeroes filters of each run's final model by temperature, oscillation temperature,
/// L1 norm and at random, re-evaluates, and writes RUN/pruning/{results,curves}.parquet (and, with
/// <see cref="PruneSettings.Structural"/>, RUN/pruning/structural/).
/// </summary>
public static class PruneStage
{
    /// <summary>The setting of a k or m that does not fit the layer: both together (the front end names both).</summary>
    public const string KOrM = "KOrM";

    public static string TableCaption(int runs, PruneSettings s) =>
        $"Test accuracy and loss after zeroing filters of {s.Layer} (weights and bias), mean ± sample standard deviation over {runs} runs; k = {s.K}, m = {s.M}.";

    /// <summary>
    /// Prunes every run (checked together first: same model, a layer they all have, k and m that fit)
    /// and returns all their evaluations; each run's own tables go to RUN/pruning/.
    /// </summary>
    public static IReadOnlyList<PruningResult> Run(IReadOnlyList<string> runs, PruneSettings settings, string artifacts, Action<string> log)
    {
        // Everything that can be checked from the manifests is checked before any evaluation.
        var manifests = runs.Select(r => (Run: r, Manifest: RunManifest.TryLoad(r) ?? throw new NoRunException(r))).ToList();
        var first = manifests[0];
        foreach (var (run, manifest) in manifests.Skip(1))
            if (manifest.Config.Model != first.Manifest.Config.Model || !manifest.Layers.OrderBy(p => p.Key).SequenceEqual(first.Manifest.Layers.OrderBy(p => p.Key)))
                throw new ThermoException($"runs of different models mixed: {run} is {Describe(manifest)}, {first.Run} is {Describe(first.Manifest)}");
        foreach (var (run, manifest) in manifests)
        {
            // A ledger entry's files are fixed by its digest record: pruning it again would rewrite them.
            if (Protocols.PruningLedger.IsEntry(run))
                throw new ArtifactException($"{run}: a results-ledger entry is read-only (it keeps the pruning it was made with); prune the run it was copied from", run);
            LayerCheck.Exists(run, settings.Layer, manifest.Layers.Keys);
            var shapes = manifest.Layers[settings.Layer];
            var dims = RunManifest.TensorsOf(shapes).Where(t => t.Tensor == "weight").Select(t => t.Shape).FirstOrDefault();
            if (dims is not { Length: 4 })
                throw new SettingException(nameof(PruneSettings.Layer), "", $"{settings.Layer} of {run} is not a conv layer ({shapes})");
            if (settings.K >= dims[0] || settings.M >= dims[0] || settings.K < 1 || settings.M < 1)
                throw new SettingException(KOrM, "", $"layer {settings.Layer} of {run} has {dims[0]} filters; k = {settings.K} and m = {settings.M} must lie in 1..{dims[0] - 1}");
            if (manifest.Status != RunStatus.Complete)
                throw new ThermoException($"{run}: the run is {manifest.Status.ToString().ToLowerInvariant()} (last complete epoch {manifest.LastCompleteEpoch}); resume its training to the end first");
            // Every snapshot run.json declares must be there (a ledger entry keeps only its final one, by design).
            var snapshots = Protocols.PruningLedger.IsEntry(run) ? SnapshotSeries.ListEpochFiles(run) : SnapshotSeries.EpochFiles(run, SnapshotSpacing.FromManifest);
            if (!snapshots.Any(f => f.Time == manifest.LastCompleteEpoch))
                throw new ThermoException($"{run}: the final snapshot (epoch {manifest.LastCompleteEpoch}) is missing from {RunLayout.Snapshots(run)}");
            if (settings.AnalyzeWindow is null && !File.Exists(RunLayout.Temperature(run)))
                throw new SettingException(nameof(PruneSettings.AnalyzeWindow), run, $"not given, and the run is not analysed (no {Path.Combine(RunLayout.AnalysisDirectory, RunLayout.TemperatureFile)}); give a window to analyse it over (e.g. last:N), or analyse it first");
        }
        if (settings.AnalyzeWindow is { } spec) Analyzer.ParseWindow(spec);
        using var tests = new TestSetCache();
        var all = new List<PruningResult>();
        // Each run is named by the shortest suffix of its path that the others lack, so a/seed-1 and
        // b/seed-1 stay two runs in every table.
        var names = RunIdentity.Names(runs.ToArray());
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < runs.Count; i++)
        {
            var run = runs[i];
            EnsureAnalysed(run, settings, log);
            using var model = RunModel.Open(run, artifacts, tests, log);
            int filters = model.Filters(settings.Layer);
            var runner = new PruningRunner(names[i], model, step => log($"  {step}"));
            var scores = Scores(run, model, settings.Layer);
            log($"pruning {run} ({i + 1}/{runs.Count}), layer {settings.Layer}: {filters} filters, window {scores.Window}");
            var results = runner.Table(scores.Scores, new PruningOptions(settings.Layer, settings.Criteria, settings.K, settings.M, settings.RandomDraws));
            CheckUnmasked(run, model, results.First(r => r.Experiment == Experiment.Original));
            var curveLayers = settings.Curves switch { CurveScope.None => [], CurveScope.All => model.ConvLayers, _ => [settings.Layer] };
            var points = new List<CurvePoint>();
            foreach (var curveLayer in curveLayers)
                points.AddRange(runner.Curves(curveLayer == settings.Layer ? scores.Scores : Scores(run, model, curveLayer).Scores, settings.Criteria, settings.RandomDraws));
            // RUN/pruning appears whole or not at all: results, curves and the structural model together.
            AtomicFiles.ReplaceDirectory(RunLayout.Pruning(run), pruning =>
            {
                PruningFiles.WriteResults(Path.Combine(pruning, RunLayout.ResultsFile), results, settings.K, settings.M);
                if (points.Count > 0) PruningFiles.WriteCurves(Path.Combine(pruning, RunLayout.CurvesFile), points);
                if (settings.Structural) Structural(pruning, model, scores.Scores, settings, artifacts, log);
                else if (Directory.Exists(Path.Combine(RunLayout.Pruning(run), RunLayout.StructuralDirectory)))
                    // An earlier structural pruning (perhaps hours of fine-tuning) is kept, not dropped with the old tables.
                    CopyAll(Path.Combine(RunLayout.Pruning(run), RunLayout.StructuralDirectory), Path.Combine(pruning, RunLayout.StructuralDirectory));
            });
            all.AddRange(results);
            var perRun = clock.Elapsed / (i + 1);
            log($"  {model.Evaluations} test-set evaluations ({runner.Evaluations} distinct masks) after {clock.Elapsed:mm\\:ss}; ETA {perRun * (runs.Count - i - 1):mm\\:ss}");
        }
        return all;
    }

    static void CopyAll(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var dir in Directory.GetDirectories(from)) CopyAll(dir, Path.Combine(to, Path.GetFileName(dir)));
    }

    static string Describe(RunManifest m) => $"{m.Config.Model} ({string.Join(", ", m.Layers.Select(p => $"{p.Key}: {p.Value}"))})";

    static void EnsureAnalysed(string run, PruneSettings settings, Action<string> log)
    {
        if (File.Exists(RunLayout.Temperature(run)) || settings.AnalyzeWindow is null) return;
        var window = Analyzer.ParseWindow(settings.AnalyzeWindow);
        log($"analysing {run} over {settings.AnalyzeWindow} …");
        Analyzer.Write(Analyzer.Run(run, AnalysisOptions.Default.WithWindow(window)));
    }

    /// <summary>Temperatures of the layer's filters from the analysis, L1 norms from the final snapshot.</summary>
    static (FilterScores Scores, string Window) Scores(string run, RunModel model, string layer)
    {
        var (t, osc, from, to) = PruningFiles.ReadTemperatures(run, layer);
        if (t.Length != model.Filters(layer))
            throw new ThermoException($"{run}: the analysis has {t.Length} filters of {layer}, the model {model.Filters(layer)}");
        return (new FilterScores(layer, t, osc, model.FilterL1(layer), model.Manifest.Config.Seed), $"{from}..{to}");
    }

    /// <summary>The unmasked model must reproduce the trainer's own final test metrics: a check that the
    /// model was rebuilt exactly as trained (same weights, buffers, data and evaluation). The table's own
    /// "original" evaluation is the one checked, so it is not made twice; nothing is written before.</summary>
    static void CheckUnmasked(string run, RunModel model, PruningResult original)
    {
        var final = TrainingRun.ReadMetrics(RunLayout.Metrics(run)).LastOrDefault(r => r.Epoch == model.Manifest.LastCompleteEpoch);
        if (final is null) return;
        var (loss, accuracy) = (original.Loss, original.Accuracy);
        if (Math.Abs(accuracy - final.TestAccuracy) > 1e-12 || Math.Abs(loss - final.TestLoss) > 1e-6 * Math.Max(1, Math.Abs(final.TestLoss)))
            throw new ThermoException($"{run}: the rebuilt model scores test accuracy {accuracy:P4}, loss {loss:G6}, but the trainer recorded {final.TestAccuracy:P4}, {final.TestLoss:G6} at epoch {final.Epoch}; the run's files and this build disagree");
    }

    /// <summary>Removes the k hottest filters physically (checked against the masked model, see
    /// <see cref="StructuralPruning.Evaluate"/>), exports the smaller model, optionally fine-tunes it.</summary>
    static void Structural(string pruning, RunModel model, FilterScores scores, PruneSettings settings, string artifacts, Action<string> log)
    {
        var manifest = model.Manifest;
        var removed = PruningPlan.Zeroed(Experiment.WithoutHottest, PruningPlan.HotFirst(scores, Criterion.Temperature), settings.K, settings.M);
        var result = StructuralPruning.Evaluate(model, settings.Layer, removed);
        var dir = Path.Combine(pruning, RunLayout.StructuralDirectory);
        Directory.CreateDirectory(dir);
        var modelPath = Path.Combine(dir, "model.parquet");
        SnapshotWriter.write(SnapshotFileFormat.Parquet, modelPath, result.Pruned);
        var report = new Dictionary<string, object?>
        {
            ["layer"] = settings.Layer, ["removed_filters"] = removed, ["criterion"] = "temperature (the k hottest)",
            ["widths_before"] = result.WidthsBefore, ["widths_after"] = result.WidthsAfter,
            ["parameters_before"] = result.Before.Parameters, ["parameters_after"] = result.After.Parameters,
            ["macs_before"] = result.Before.MultiplyAccumulates, ["macs_after"] = result.After.MultiplyAccumulates,
            ["test_accuracy"] = result.Accuracy, ["test_loss"] = result.Loss, ["max_logit_difference_vs_masked"] = result.MaxLogitDifference,
            ["model"] = "model.parquet (rebuild: thermo train --widths " + string.Join(",", result.WidthsAfter) + " --init-from it)",
        };
        int index = Array.IndexOf(FourConvNet.ConvLayers, settings.Layer);
        log($"  structural: {settings.Layer} {result.WidthsBefore[index]} → {result.WidthsAfter[index]} filters; parameters {result.Before.Parameters:N0} → {result.After.Parameters:N0}, MACs {result.Before.MultiplyAccumulates:N0} → {result.After.MultiplyAccumulates:N0}; test accuracy {result.Accuracy:P2}; max |logit difference| vs the masked model {result.MaxLogitDifference:G3}");
        if (settings.FinetuneEpochs > 0)
        {
            var finetuneDir = Path.Combine(dir, RunLayout.FinetuneDirectory);
            if (Directory.Exists(finetuneDir)) Directory.Delete(finetuneDir, true);
            var config = manifest.Config with { Widths = result.WidthsAfter, Epochs = settings.FinetuneEpochs, InitFrom = Path.GetFullPath(modelPath) };
            using var trainer = TrainingRun.Start(config, finetuneDir, artifacts, new SilentProgress());
            trainer.Run();
            var last = TrainingRun.ReadMetrics(RunLayout.Metrics(finetuneDir)).Last();
            report["finetune_epochs"] = settings.FinetuneEpochs;
            report["finetune_test_accuracy"] = last.TestAccuracy;
            report["finetune_test_loss"] = last.TestLoss;
            log($"  fine-tuned {settings.FinetuneEpochs} epochs: test accuracy {last.TestAccuracy:P2} (run in {finetuneDir})");
        }
        AtomicFiles.WriteAllText(Path.Combine(dir, "report.json"), JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
    }
}
