using Thermo.Pipeline.Pruning;
using System.Globalization;
using System.Net;
using System.Text;
using ScottPlot;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;

namespace Thermo.Pipeline.Report;

/// <summary>How a report is drawn.</summary>
/// <param name="Layer">Layer whose filters get the per-filter figures (null: the first analysed per filter).</param>
/// <param name="Width">Figure width in pixels.</param>
/// <param name="Height">Figure height in pixels.</param>
public sealed record ReportOptions(string? Layer = null, int Width = 960, int Height = 540);

/// <summary>What a report wrote: the interactive page (index.html), the page of figures and tables
/// (figures.html), its figures (PNG, beside the pages) and the names of its tables.</summary>
public sealed record ReportResult(string Page, string FiguresPage, IReadOnlyList<string> Figures, IReadOnlyList<string> Tables);

/// <summary>
/// <c>thermo report</c>: two self-contained HTML pages that open offline and can be mailed: index.html,
/// the interactive page (<see cref="PagePayload"/>: the charts of <c>thermo watch</c>, the data inlined),
/// and figures.html, the papers' figures and tables (figures embedded as data URIs) with the same
/// figures as PNG files beside it, for papers and slides. The pages are written into a temporary
/// directory that replaces <c>report/</c> whole.
/// </summary>
public static class RunReport
{
    sealed class Page(string title)
    {
        readonly StringBuilder body = new();
        public List<string> Figures { get; } = [];
        public List<string> Tables { get; } = [];

        public void Section(string heading, string? text = null)
        {
            body.Append($"<h2>{Encode(heading)}</h2>\n");
            if (text is not null) body.Append($"<p>{Encode(text)}</p>\n");
        }

        public void Figure(string directory, string file, Plot plot, string caption, ReportOptions o)
        {
            var path = Path.Combine(directory, file);
            plot.SavePng(path, o.Width, o.Height);
            var data = Convert.ToBase64String(File.ReadAllBytes(path));
            body.Append($"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{Encode(caption)}\" width=\"{o.Width}\" height=\"{o.Height}\" data-file=\"{file}\">")
                .Append($"<figcaption>{Encode(caption)} <a href=\"{file}\">{file}</a></figcaption></figure>\n");
            Figures.Add(file);
        }

        public void Table(string name, string[] header, IEnumerable<string[]> rows)
        {
            body.Append($"<table data-table=\"{Encode(name)}\"><thead><tr>{string.Concat(header.Select(h => $"<th>{Encode(h)}</th>"))}</tr></thead><tbody>\n");
            foreach (var row in rows) body.Append($"<tr>{string.Concat(row.Select(c => $"<td>{Encode(c)}</td>"))}</tr>\n");
            body.Append("</tbody></table>\n");
            Tables.Add(name);
        }

        public void Paragraph(string text) => body.Append($"<p>{Encode(text)}</p>\n");

        public string Html() => $$"""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>{{Encode(title)}}</title>
            <style>
            body { font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
            figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; border: 1px solid #ddd; }
            figcaption { font-size: 0.9em; color: #555; }
            table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
            th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
            th:first-child, td:first-child { text-align: left; }
            </style></head><body>
            <h1>{{Encode(title)}}</h1>
            <p><a href="index.html">The interactive page</a> (zoom, hover, a window of your choosing).</p>
            {{body}}
            </body></html>
            """;
    }

    static string Encode(string s) => WebUtility.HtmlEncode(s);
    static string G(double v) => double.IsFinite(v) ? v.ToString("0.###e+00", CultureInfo.InvariantCulture) : "—";
    static string Pct(double v) => double.IsFinite(v) ? (v * 100).ToString("F2", CultureInfo.InvariantCulture) + "%" : "—";

    /// <summary>Writes <c>RUN/report/index.html</c> and its PNG figures from the run's files.</summary>
    public static ReportResult WriteRun(string run, ReportOptions options, Action<string>? progress = null)
    {
        // A ledger entry's files are fixed by its digest record: a report written into it would make it untrusted.
        if (Protocols.PruningLedger.IsEntry(run))
            throw new ArtifactException($"{run}: a results-ledger entry is read-only (its files are recorded in {Path.GetFileName(Protocols.PruningLedger.DigestFile(Path.GetFullPath(run)))}); report it into a directory of its own", run);
        var r = RunTables.Load(run);
        var layers = r.UnitLayers;
        var layer = options.Layer ?? layers.FirstOrDefault();
        if (options.Layer is not null) LayerCheck.Analysed(run, options.Layer, layers);
        return WriteAtomically(RunLayout.Report(run), dir => BuildRun(r, layer, dir, options, progress),
            PagePayload.StaticData($"Thermo: {r.Name}", [r]));
    }

    /// <summary>Writes a page comparing several runs (the spread across runs) into <paramref name="outDir"/>.</summary>
    public static ReportResult WriteRuns(IReadOnlyList<string> runs, string outDir, ReportOptions options, Action<string>? progress = null)
    {
        var tables = RunTables.LoadAll(runs);
        var layer = options.Layer ?? tables.SelectMany(t => t.UnitLayers).FirstOrDefault();
        return WriteAtomically(outDir, dir => BuildRuns(tables, layer, dir, options, progress),
            PagePayload.StaticData($"Thermo: {tables.Count} runs", tables));
    }

    /// <summary>The interactive page, with every run's data inlined.</summary>
    public const string PageFile = "index.html";
    /// <summary>The page of figures (PNG) and tables.</summary>
    public const string FiguresFile = "figures.html";

    static ReportResult WriteAtomically(string target, Func<string, Page> build, System.Text.Json.Nodes.JsonObject data)
    {
        var page = AtomicFiles.ReplaceDirectory(target, temp =>
        {
            File.WriteAllText(Path.Combine(temp, PageFile), PagePayload.StaticPage(data));
            var page = build(temp);
            File.WriteAllText(Path.Combine(temp, FiguresFile), page.Html());
            return page;
        });
        return new ReportResult(Path.Combine(target, PageFile), Path.Combine(target, FiguresFile), page.Figures, page.Tables);
    }

    /// <summary>How captions, file names and the weights' time axis name the time: an imported run's own
    /// unit (epoch or step); "epoch" for a run Thermo trained, whose snapshots are per epoch.</summary>
    static string TimeWord(RunTables r) => r.Imported ? r.TimeName : "epoch";

    static string Convention(RunTables r) =>
        r.Temperature is { Convention: { Length: > 0 } c } ? c[0] : "kinetic";

    static Page BuildRun(RunTables r, string? layer, string dir, ReportOptions o, Action<string>? progress)
    {
        var page = new Page($"Thermo report: {r.Name}");
        void Step(string what) => progress?.Invoke($"  {what}");
        var unit = TimeWord(r);
        if (r.Source is { } source)
        {
            page.Paragraph($"Run {r.Run}, {source.Describe()}, by thermo import (its {RunLayout.ManifestFile} names each checkpoint and its SHA-256). Every figure below is drawn from the run's files: {(r.SourceMetrics is not null ? RunLayout.SourceMetricsFile + ", " : "")}{RunLayout.AnalysisDirectory}/*.parquet and, for weights and filter patterns, the snapshots.");
            SourceTraining(page, r, dir, o);
        }
        else
        {
            var model = r.Manifest is { } m && m.TryGetProperty("config", out var config) && config.TryGetProperty("model", out var name) ? name.GetString() : "?";
            page.Paragraph($"Run {r.Run} ({model}). Every figure below is drawn from the run's files: {RunLayout.MetricsFile}, {RunLayout.GradNoiseFile}, {RunLayout.AnalysisDirectory}/*.parquet, {RunLayout.PruningDirectory}/*.parquet and, for weights and filter patterns, the snapshots.");

            page.Section("Training", "Train and test loss and accuracy per epoch; the shaded band is the equilibrium window the analysis used.");
            page.Figure(dir, "loss.png", Figures.Metrics(r, accuracy: false), "Loss per epoch.", o);
            page.Figure(dir, "accuracy.png", Figures.Metrics(r, accuracy: true), "Accuracy per epoch.", o);
        }
        Step("training curves");

        if (r.Temperature is not null)
        {
            var convention = Convention(r);
            var window = r.Window!.Value;
            page.Section("Temperatures", r.Imported
                ? $"Equilibrium temperatures over {unit}s {window.From}..{window.To}, convention: {convention}."
                : $"Equilibrium temperatures over snapshots {window.From}..{window.To}, convention: {convention}.");
            page.Figure(dir, "layer-temperatures.png", Figures.LayerTemperatures(r, convention), "Equilibrium, drift and oscillation temperature of every layer (log scale).", o);
            if (r.Instantaneous is not null)
                page.Figure(dir, $"temperature-per-{unit}.png", Figures.TemperatureOverTime(r, null, convention), $"Instantaneous temperature T(e) of every layer per {unit} of the window (log scale).", o);
            if (layer is not null)
            {
                var (units, t, drift, osc, l1) = r.UnitTemperatures(layer);
                page.Figure(dir, $"filter-temperatures-{layer}.png", Figures.FilterTemperatures(r, layer, convention),
                    $"Equilibrium temperature of each filter of {layer}: total and drift-corrected (oscillation) side by side, as the pruning paper's Figs 4, 9 and 14.", o);
                if (r.Instantaneous is not null)
                    page.Figure(dir, $"filter-temperature-per-{unit}-{layer}.png", Figures.TemperatureOverTime(r, layer, convention), $"Instantaneous temperature of each filter of {layer} per {unit} of the window (log scale).", o);
                if (units.Length >= 3)
                    page.Figure(dir, $"temperature-vs-l1-{layer}.png", Figures.TemperatureVersusL1(r, layer, convention),
                        $"Equilibrium temperature against L1 norm of each filter of {layer}, with the Spearman correlation of their rankings and its p-value.", o);
                var fits = FitsByUnit(r, layer);
                var order = Enumerable.Range(0, units.Length).OrderByDescending(i => t[i]).ToArray();
                page.Table($"filters-{layer}", ["rank", "filter", "T", "T_drift", "T_osc", "L1 norm", "MSD exponent α", "diffusion constant D"],
                    order.Select((i, rank) => new[]
                    {
                        (rank + 1).ToString(), units[i].ToString(), G(t[i]), G(drift[i]), G(osc[i]), G(l1[i]),
                        fits.TryGetValue((units[i], "alpha"), out var a) ? a.ToString("F2", CultureInfo.InvariantCulture) : "—",
                        fits.TryGetValue((units[i], "diffusion_constant"), out var d) ? G(d) : "—",
                    }));
                Step("temperatures");
                int hottest = units[order[0]], coldest = units[order[^1]];
                WeightFigures(r, layer, hottest, coldest, order.Select(i => units[i]).ToArray(), page, dir, o);
                Step("trajectories and filter patterns");
                if (r.Msd is { } msd && msd.Layer.Contains(layer))
                {
                    page.Section("Diffusion", "Time-averaged mean squared displacement and mean |displacement| against lag, log–log, with guides ∝ τ (diffusive) and ∝ τ² (ballistic); then the MSD with each weight's drift removed.");
                    // An imported series' lags are in its time unit (its snapshots may be unevenly spaced).
                    var lagLabel = r.Imported ? $"lag τ ({unit}s), log scale" : "lag τ (snapshot intervals), log scale";
                    page.Figure(dir, $"msd-{layer}.png", Figures.Diffusion(r, layer, hottest, coldest, driftCorrected: false, lagLabel), $"MSD and mean |MD| of the hottest and coldest filter of {layer} and the mean over its filters (Figs 12–13).", o);
                    page.Figure(dir, $"msd-drift-corrected-{layer}.png", Figures.Diffusion(r, layer, hottest, coldest, driftCorrected: true, lagLabel), $"Drift-corrected MSD of the same filters.", o);
                    Step("diffusion");
                }
            }
        }
        else page.Section("Temperatures", "The run has not been analysed: run `thermo analyze RUN` and report again.");

        if (r.GradientNoise is not null)
        {
            page.Section("Gradient noise", "The training signal s_I = mean |∂L/∂w| of each layer over an epoch's minibatches, with its spread (the partial-entropy paper's Fig 1).");
            page.Figure(dir, "gradient-noise.png", Figures.GradientNoise(r), "s_I per layer over epochs, mean ± std over minibatches, log scale.", o);
            Step("gradient noise");
        }

        if (r.Pruning is { Count: > 0 } pruning)
        {
            PruningSection(page, [r], pruning, dir, o);
            Step("pruning");
        }
        if (r.Imported)
        {
            var missing = new List<string>();
            if (r.GradientNoise is null) missing.Add("gradient noise (measured on the minibatches while Thermo trains)");
            if (r.Pruning is null) missing.Add("pruning (thermo prune evaluates a model Thermo trained, on its data)");
            if (missing.Count > 0)
                page.Paragraph($"Left out: {string.Join(" and ", missing)}; an imported checkpoint series has only its weights{(r.SourceMetrics is not null ? " and what its source logged" : "")}.");
        }
        return page;
    }

    /// <summary>The training panel of an imported run: each quantity its source logged
    /// (source-metrics.parquet) against the source's time, or one line saying why there is none.</summary>
    static void SourceTraining(Page page, RunTables r, string dir, ReportOptions o)
    {
        if (r.SourceMetrics is not { } m)
        {
            page.Section("Training", $"No training curves: the run has no {RunLayout.SourceMetricsFile} (its source logged no metrics that thermo import could read: a metrics.csv beside the checkpoints, Lightning's metrics.csv or a Hugging Face trainer_state.json log_history).");
            return;
        }
        var unit = TimeUnits.Name(m.TimeUnit);
        if (m.Columns.Count == 0)
        {
            page.Section("Training", $"No training curves: {RunLayout.SourceMetricsFile} holds {m.Time.Length} rows but no logged value.");
            return;
        }
        page.Section("Training", $"What the source logged ({RunLayout.SourceMetricsFile}: {string.Join(", ", m.Columns.Select(c => c.Name))}), each against the {unit} it was logged at; the shaded band is the equilibrium window the analysis used.");
        foreach (var (column, values) in m.Columns)
        {
            int logged = values.Count(double.IsFinite);
            page.Figure(dir, $"source-{FileSafe(column)}.png", Figures.SourceMetric(r, column), $"{column} per {unit}, as the source logged it ({logged} value{(logged == 1 ? "" : "s")}).", o);
        }
    }

    /// <summary>A column name as part of a file name: letters, digits, '-' and '_' kept, anything else '_'.</summary>
    static string FileSafe(string name) =>
        new(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());

    static Dictionary<(int Unit, string Quantity), double> FitsByUnit(RunTables r, string layer)
    {
        var result = new Dictionary<(int, string), double>();
        if (r.Fits is not { } f) return result;
        var (layers, units, quantity, value) = (f.Layer, f.Unit, f.Quantity, f.Value);
        for (int i = 0; i < layers.Length; i++)
            if (layers[i] == layer && units[i] >= 0) result[(units[i], quantity[i])] = value[i];
        return result;
    }

    /// <summary>Trajectories, velocities and learned patterns need the weights themselves: one read of each snapshot.</summary>
    static void WeightFigures(RunTables r, string layer, int hottest, int coldest, int[] hotFirst, Page page, string dir, ReportOptions o)
    {
        // A ledger entry keeps only its final snapshot, by design (its digest record says it is one).
        if (Protocols.PruningLedger.IsEntry(r.Run))
        {
            page.Paragraph("This run is a results-ledger entry, which keeps only the final snapshot: the trajectories and velocity figures need every epoch's snapshot and are left out.");
            return;
        }
        // An imported run's snapshots are those its run.json lists, in its own time unit.
        var files = r.Imported ? Snapshots.SeriesFiles(r.Run).Item2 : SnapshotSeries.EpochFiles(r.Run, SnapshotSpacing.FromManifest);
        if (files.Length == 0) return;
        var epochs = files.Select(f => f.Time).ToArray();
        var hot = new float[files.Length][];
        var cold = new float[files.Length][];
        TensorSnapshot? last = null;
        var chunk = new float[1 << 14];
        // Σ v² per weight over the window's velocities, v = (w(e) − w(e − Δ)) / Δ between consecutive snapshots.
        double[]? sumSquares = null;
        int velocities = 0;
        var window = r.Window;
        for (int i = 0; i < files.Length; i++)
        {
            var weight = LayerWeight(files[i].Path, layer, chunk);
            int size = weight.Values.Length / weight.Shape[0];
            hot[i] = weight.Values.AsSpan(hottest * size, size).ToArray();
            cold[i] = weight.Values.AsSpan(coldest * size, size).ToArray();
            if (last is not null && window is { } w && epochs[i - 1] >= w.From && epochs[i] <= w.To)
            {
                sumSquares ??= new double[weight.Values.Length];
                double dt = epochs[i] - epochs[i - 1];
                for (int k = 0; k < sumSquares.Length; k++) { double v = (weight.Values[k] - last.Values[k]) / dt; sumSquares[k] += v * v; }
                velocities++;
            }
            last = weight;
        }
        var unit = TimeWord(r);
        page.Section("Weights of the hottest and coldest filter", r.Imported
            ? $"Every weight of the filter over the {unit}s of the imported checkpoints, then its velocity (w(i) − w(i−1)) / Δt between consecutive snapshots, per {unit} (the pruning paper's Figs 5–8)."
            : "Every weight of the filter over the epochs, then its velocity between consecutive snapshots (the pruning paper's Figs 5–8).");
        Plot Trajectory(int filter, string which, float[][] weights, bool velocities) =>
            Figures.Trajectories(r.Name, layer, filter, which, epochs, weights, velocities, r.Window, unit, perInterval: r.Imported);
        page.Figure(dir, "trajectories-hottest.png", Trajectory(hottest, "hottest", hot, false), $"Weights of the hottest filter ({layer} filter {hottest}).", o);
        page.Figure(dir, "trajectories-coldest.png", Trajectory(coldest, "coldest", cold, false), $"Weights of the coldest filter ({layer} filter {coldest}).", o);
        page.Figure(dir, "velocities-hottest.png", Trajectory(hottest, "hottest", hot, true), "Velocities of the hottest filter's weights.", o);
        page.Figure(dir, "velocities-coldest.png", Trajectory(coldest, "coldest", cold, true), "Velocities of the coldest filter's weights.", o);
        if (sumSquares is not null && last is not null && r.Window is { } shown)
        {
            int size = sumSquares.Length / last.Shape[0];
            var meanSquare = Enumerable.Range(0, last.Shape[0]).Select(f => Enumerable.Range(0, size).Select(k => sumSquares[f * size + k] / velocities).ToArray()).ToArray();
            page.Figure(dir, $"mean-square-velocity-{layer}.png", Figures.MeanSquareVelocityMap(r.Name, layer, meanSquare, hotFirst, shown),
                $"Mean square velocity of every weight of {layer} over the window, one row per filter, hottest first (log10 colour scale; the pruning paper's Fig 1).", o);
        }
        if (last is { Shape.Length: 4 })
        {
            page.Section("Learned filters", "The final weights of each filter as a heat map, ordered by equilibrium temperature (the pruning paper's Figs 10–11).");
            page.Figure(dir, $"filters-{layer}.png", Figures.FilterPatterns(r.Name, layer, last, hotFirst), $"Final {layer} filters, hottest to coldest.", o);
        }
    }

    /// <summary>One layer's weight tensor from a snapshot file: the file is streamed through a reused
    /// chunk and only that tensor's values are kept, not the whole snapshot.</summary>
    static TensorSnapshot LayerWeight(string path, string layer, float[] chunk)
    {
        int[]? shape = null;
        float[] values = [];
        long start = 0, offset = 0;
        Snapshots.StreamValues(path,
            (_, _, directory) =>
            {
                long at = 0;
                foreach (var t in directory)
                {
                    long size = t.Shape.Aggregate(1L, (a, b) => a * b);
                    if (t.Layer == layer && t.Tensor == "weight") (shape, start, values) = (t.Shape, at, new float[size]);
                    at += size;
                }
                if (shape is null) throw new ArtifactException($"{path}: holds no {layer}.weight", path);
            },
            () => chunk,
            (filled, count) =>
            {
                long from = Math.Max(offset, start), until = Math.Min(offset + count, start + values.Length);
                if (from < until) Array.Copy(filled, from - offset, values, from - start, until - from);
                offset += count;
            });
        return new TensorSnapshot(layer, "weight", shape!, values);
    }

    static void PruningSection(Page page, IReadOnlyList<RunTables> runs, IReadOnlyList<PruningResult> results, string dir, ReportOptions o)
    {
        // k and m as the table was made: k filters zeroed "without", all but m zeroed "only"
        var k = results.First(r => r.Experiment == Experiment.WithoutHottest).Zeroed.Length;
        var layer = results[0].Layer;
        int filters = results[0].Filters > 0 ? results[0].Filters
            : runs[0].UnitLayers.Contains(layer) ? runs[0].UnitTemperatures(layer).Units.Length
            : throw new ArtifactException($"{runs[0].Run}: its pruning results do not say how many filters {layer} has; prune it again", runs[0].Run);
        int m = filters - results.First(r => r.Experiment == Experiment.OnlyHottest).Zeroed.Length;
        page.Section("Pruning", $"Test accuracy and loss with filters of {layer} zeroed (weights and bias), as the pruning paper's Tables 2–3; {(runs.Count > 1 ? $"mean ± sample standard deviation over {runs.Count} runs" : "one run")}.");
        var table = Aggregation.Table(results, k, m);
        page.Table("pruning", ["criterion", "model", "test accuracy", "± std", "test loss", "± std"],
            table.Select(t => new[] { PruningPlan.Name(t.Criterion), t.Label, Pct(t.AccuracyMean), Pct(t.AccuracyStd), G(t.LossMean), G(t.LossStd) }));
        var comparisons = Aggregation.Comparisons(results);
        if (comparisons.Any(c => c.Accuracy.Runs >= 2))
        {
            page.Paragraph("Paired comparisons across runs: test accuracy of row A minus row B per run, in percentage points, with a 95 % t interval and two-sided paired t and exact Wilcoxon signed-rank p-values.");
            string P(double v) => double.IsNaN(v) ? "—" : v.ToString("F3", System.Globalization.CultureInfo.InvariantCulture);
            string D(double v) => double.IsNaN(v) ? "—" : v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
            page.Table("pruning-comparisons", ["comparison (A − B)", "runs", "mean", "sd", "95 % interval", "t p", "Wilcoxon p"],
                comparisons.Select(c => new[] { c.Name, c.Accuracy.Runs.ToString(System.Globalization.CultureInfo.InvariantCulture), D(c.Accuracy.MeanDifference), D(c.Accuracy.StandardDeviation), $"[{D(c.Accuracy.Low95)}, {D(c.Accuracy.High95)}]", P(c.Accuracy.TPValue), P(c.Accuracy.WilcoxonPValue) }));
        }
        if (runs.Any(r => r.Curves is not null))
        {
            var curveLayers = runs.Where(r => r.Curves is not null).SelectMany(r => r.Curves!.Select(p => p.Layer)).Distinct().ToArray();
            foreach (var curveLayer in curveLayers)
                page.Figure(dir, $"prune-curves-{curveLayer}.png", Figures.PruneCurves(runs, curveLayer),
                    $"Test accuracy as 0, 1, … filters of {curveLayer} are removed, hottest first, coldest first, smallest L1 first and at random.", o);
        }
    }

    static Page BuildRuns(IReadOnlyList<RunTables> runs, string? layer, string dir, ReportOptions o, Action<string>? progress)
    {
        var page = new Page($"Thermo report: {runs.Count} runs");
        page.Paragraph($"Runs: {string.Join(", ", runs.Select(r => r.Run))}. Each run's own report is in its {RunLayout.ReportDirectory}/ directory.");
        page.Section("Training across runs");
        var trained = runs.Where(r => r.Metrics is not null).ToList();
        if (trained.Count > 0)
            page.Figure(dir, "accuracy-across-runs.png", Figures.AccuracyAcrossRuns(runs), "Test accuracy per epoch of every run.", o);
        if (trained.Count < runs.Count)
            page.Paragraph($"Not in {(trained.Count > 0 ? "this figure" : "a figure")}: {string.Join(", ", runs.Where(r => r.Metrics is null).Select(r => r.Name))}, imported from checkpoints (no {RunLayout.MetricsFile}; each run's own report draws what its source logged).");
        progress?.Invoke("  training curves");
        if (layer is not null && runs.Any(r => r.UnitLayers.Contains(layer)))
        {
            var convention = Convention(runs.First(r => r.Temperature is not null));
            page.Section("Temperatures across runs", "Which filters are hot differs from run to run; the sorted temperatures show how alike their distributions are.");
            page.Figure(dir, $"temperature-spread-{layer}.png", Figures.TemperatureSpread(runs, layer, convention), $"Filter temperatures of {layer}, sorted hottest first, one series per run.", o);
            progress?.Invoke("  temperatures");
        }
        // Runs are told apart by path (their Name here), not by what each was called when it was pruned alone.
        var results = runs.Where(r => r.Pruning is not null).SelectMany(r => r.Pruning!.Select(p => p with { Run = r.Name })).ToList();
        if (results.Count > 0)
        {
            PruningSection(page, runs.Where(r => r.Pruning is not null).ToList(), results, dir, o);
            progress?.Invoke("  pruning");
        }
        return page;
    }
}
