using Thermo.Pipeline.Pruning;
using ScottPlot;
using ScottPlot.TickGenerators;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Analysis.Statistics;

namespace Thermo.Pipeline.Report;

/// <summary>
/// The papers' figures, each drawn from a run's tables (or snapshots, for weight trajectories and
/// filter patterns); nothing is recomputed here that the analysis already wrote.
/// </summary>
public static class Figures
{
    const string What = "report";

    static Plot New(string title, string x, string y)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
        return plot;
    }

    /// <summary>log10 axis ticks labelled as powers of ten (values are plotted as their log10).</summary>
    static void LogAxis(IAxis axis) =>
        axis.TickGenerator = new NumericAutomatic
        {
            MinorTickGenerator = new LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = v => $"1e{v:0}",
        };

    static (double[] X, double[] Y) Positive(IEnumerable<double> xs, IEnumerable<double> ys, bool logX, bool logY)
    {
        var pairs = xs.Zip(ys).Where(p => (!logX || p.First > 0) && (!logY || p.Second > 0) && double.IsFinite(p.First) && double.IsFinite(p.Second)).ToArray();
        return (pairs.Select(p => logX ? Math.Log10(p.First) : p.First).ToArray(), pairs.Select(p => logY ? Math.Log10(p.Second) : p.Second).ToArray());
    }

    static ScottPlot.Plottables.Scatter Line(Plot plot, double[] x, double[] y, string label, Color? color = null, float width = 1.5f)
    {
        var s = plot.Add.Scatter(x, y, color);
        s.LegendText = label;
        s.MarkerSize = 0;
        s.LineWidth = width;
        return s;
    }

    /// <summary>A translucent band between two curves (a spread around a mean).</summary>
    static void Band(Plot plot, double[] x, double[] lower, double[] upper, Color color)
    {
        var band = plot.Add.FillY(x, lower, upper);
        band.FillColor = color.WithAlpha(0.18);
        band.LineWidth = 0;
    }

    static void ShadeWindow(Plot plot, (int From, int To)? window)
    {
        if (window is not { } w) return;
        var span = plot.Add.HorizontalSpan(w.From, w.To, Colors.Orange.WithAlpha(0.15));
        span.LegendText = $"equilibrium window {w.From}..{w.To}";
    }

    /// <summary>Train and test loss (or accuracy) per epoch, the equilibrium window shaded (the pruning paper's Fig 3).</summary>
    public static Plot Metrics(RunTables r, bool accuracy)
    {
        var m = r.Metrics!;
        var epochs = m.Select(row => (double)row.Epoch).ToArray();
        var kind = accuracy ? "accuracy" : "loss";
        var plot = New($"{r.Name}: {kind} per epoch", "epoch", kind);
        ShadeWindow(plot, r.Window);
        foreach (var (split, value) in new (string, Func<MetricsRow, double>)[]
                 {
                     ("train", accuracy ? row => row.TrainAccuracy : row => row.TrainLoss),
                     ("test", accuracy ? row => row.TestAccuracy : row => row.TestLoss),
                 })
        {
            var (x, y) = Positive(epochs, m.Select(value), false, false);
            Line(plot, x, y, split);
        }
        plot.ShowLegend();
        return plot;
    }

    /// <summary>
    /// One quantity an imported run's source logged (a column of source-metrics.parquet) against the
    /// source's time column, the equilibrium window shaded; rows without a value are skipped.
    /// </summary>
    public static Plot SourceMetric(RunTables r, string column)
    {
        var m = r.SourceMetrics ?? throw new ArtifactException($"{r.Run}: has no {RunLayout.SourceMetricsFile}", r.Run);
        var values = m.Columns.Where(c => c.Name == column).Select(c => c.Values).FirstOrDefault()
            ?? throw new ArtifactException($"{r.Run}: {RunLayout.SourceMetricsFile} logs no '{column}'", r.Run);
        var unit = TimeUnits.Name(m.TimeUnit);
        var plot = New($"{r.Name}: {column} per {unit}, as the source logged it", unit, column);
        ShadeWindow(plot, r.Window);
        var (x, y) = Positive(m.Time.Select(t => (double)t), values, false, false);
        var line = Line(plot, x, y, column);
        line.MarkerSize = x.Length < 60 ? 4 : 0;
        plot.ShowLegend();
        return plot;
    }

    static readonly Color[] Palette = [Colors.C0, Colors.C1, Colors.C2, Colors.C3, Colors.C4, Colors.C5, Colors.C6, Colors.C7, Colors.C8, Colors.C9];

    static void GroupedBars(Plot plot, string[] categories, (string Label, double[] Values)[] series, bool log)
    {
        double width = 0.8 / series.Length;
        // on a log axis the bars rise from the decade below the smallest value
        double floor = log ? Math.Floor(Math.Log10(series.SelectMany(x => x.Values).Where(x => x > 0).DefaultIfEmpty(1).Min())) : 0;
        var bars = new List<Bar>();
        for (int s = 0; s < series.Length; s++)
        {
            for (int i = 0; i < categories.Length; i++)
            {
                double v = series[s].Values[i];
                if (log && !(v > 0)) continue;
                bars.Add(new Bar
                {
                    Position = i - 0.4 + width * (s + 0.5), Value = log ? Math.Log10(v) : v, ValueBase = floor,
                    Size = width * 0.95, FillColor = Palette[s % Palette.Length],
                });
            }
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = series[s].Label, FillColor = Palette[s % Palette.Length] });
        }
        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = new NumericManual(Enumerable.Range(0, categories.Length).Select(i => (double)i).ToArray(), categories);
        if (log) LogAxis(plot.Axes.Left);
        plot.ShowLegend();
    }

    /// <summary>Equilibrium temperature of each filter of a layer, total and drift-corrected side by side (Figs 4, 9, 14).</summary>
    public static Plot FilterTemperatures(RunTables r, string layer, string convention)
    {
        var (units, t, _, osc, _) = r.UnitTemperatures(layer);
        var plot = New($"{r.Name}: equilibrium temperature of the filters of {layer}", "filter", $"T ({convention})");
        GroupedBars(plot, units.Select(u => u.ToString()).ToArray(), [("T (total)", t), ("T_osc (drift-corrected)", osc)], log: false);
        return plot;
    }

    /// <summary>Every layer's equilibrium, drift and oscillation temperature, log scale.</summary>
    public static Plot LayerTemperatures(RunTables r, string convention)
    {
        var t = r.Temperature!;
        var rows = Enumerable.Range(0, t.Grouping.Length).Where(i => t.Grouping[i] == "layer").ToArray();
        double[] Pick(double[] v) => rows.Select(i => v[i]).ToArray();
        var layers = rows.Select(i => t.Layer[i]).ToArray();
        var plot = New($"{r.Name}: temperature of every layer", "layer", $"T ({convention}), log scale");
        GroupedBars(plot, layers, [("T", Pick(t.Temperature)), ("T_drift", Pick(t.Drift)), ("T_osc", Pick(t.Oscillation))], log: true);
        return plot;
    }

    /// <summary>
    /// Instantaneous temperature T(e) against epoch (instantaneous.parquet): one line per layer, or with
    /// <paramref name="layer"/> one per filter of that layer; log scale.
    /// </summary>
    public static Plot TemperatureOverTime(RunTables r, string? layer, string convention)
    {
        var t = r.Instantaneous!;
        var (layers, units, epochs, values) = (t.Layer, t.Unit, t.Time, t.Temperature);
        var unit = TimeUnits.Name(t.TimeUnit);
        var plot = New(layer is null ? $"{r.Name}: temperature of every layer per {unit}" : $"{r.Name}: temperature of each filter of {layer} per {unit}",
            unit, $"T(e) ({convention}), log scale");
        var series = Enumerable.Range(0, layers.Length)
            .Where(i => layer is null ? units[i] < 0 : layers[i] == layer && units[i] >= 0)
            .GroupBy(i => (layers[i], units[i]));
        var palette = new ScottPlot.Palettes.Category20();
        int n = 0;
        foreach (var g in series)
        {
            var rows = g.OrderBy(i => epochs[i]).ToArray();
            var (x, y) = Positive(rows.Select(i => (double)epochs[i]), rows.Select(i => values[i]), false, true);
            Line(plot, x, y, layer is null ? g.Key.Item1 : $"filter {g.Key.Item2}", palette.GetColor(n++), 1.2f);
        }
        LogAxis(plot.Axes.Left);
        plot.ShowLegend();
        return plot;
    }

    /// <summary>
    /// The per-weight mean square velocity ⟨v²⟩ over the window (the pruning paper's Fig 1, the graph
    /// paper's Fig 4): one row per filter, hottest at the top, one column per weight of the filter; log10
    /// colour scale.
    /// </summary>
    public static Plot MeanSquareVelocityMap(string runName, string layer, double[][] meanSquareVelocity, int[] hotFirst, (int From, int To) window)
    {
        int columns = meanSquareVelocity.Max(row => row.Length);
        var grid = new double[hotFirst.Length, columns];
        for (int position = 0; position < hotFirst.Length; position++)
            for (int j = 0; j < columns; j++)
            {
                var row = meanSquareVelocity[hotFirst[position]];
                grid[position, j] = j < row.Length && row[j] > 0 ? Math.Log10(row[j]) : double.NaN;
            }
        // The order is legible as a list for a few filters; past that it overflows the axis, and the
        // interactive page names each row.
        var rows = hotFirst.Length <= 16 ? $"filters top to bottom: {string.Join(", ", hotFirst)}" : $"{hotFirst.Length} filters, hottest at the top";
        var plot = New($"{runName}: log10 ⟨v²⟩ of each weight of {layer} over epochs {window.From}..{window.To}",
            "weight within the filter", rows);
        var map = plot.Add.Heatmap(grid);
        map.Colormap = new ScottPlot.Colormaps.Turbo();
        map.NaNCellColor = Colors.White;
        plot.Add.ColorBar(map);
        plot.Axes.Left.TickGenerator = new NumericManual([], []);
        return plot;
    }

    /// <summary>Equilibrium temperature against L1 norm of a layer's filters, with the Spearman ρ of
    /// their rankings and its two-sided p-value (t with n − 2 degrees of freedom) in the title.</summary>
    public static Plot TemperatureVersusL1(RunTables r, string layer, string convention)
    {
        var (units, t, _, _, l1) = r.UnitTemperatures(layer);
        var rho = Ranking.spearman(t, l1);
        var p = PairedTests.SpearmanPValue(rho, units.Length);
        var plot = New($"{r.Name}: {layer} filters, T against L1 norm (Spearman ρ = {rho:F2}, p = {p:F3}, n = {units.Length})", "L1 norm of the filter", $"T ({convention})");
        var (x, y) = Positive(l1, t, false, false);
        var dots = plot.Add.ScatterPoints(x, y);
        dots.MarkerSize = 8;
        for (int i = 0; i < units.Length; i++)
            if (double.IsFinite(t[i]) && double.IsFinite(l1[i])) plot.Add.Text(units[i].ToString(), l1[i], t[i]).LabelFontSize = 10;
        return plot;
    }

    /// <summary>Weights of one filter over the epochs (Figs 5, 7), or their velocities w(e) − w(e−1) (Figs 6, 8).</summary>
    public static Plot Trajectories(string runName, string layer, int unit, string which, int[] epochs, float[][] weights, bool velocities, (int From, int To)? window) =>
        Trajectories(runName, layer, unit, which, epochs, weights, velocities, window, "epoch", perInterval: false);

    /// <summary>
    /// Weights of one filter against time in <paramref name="timeName"/> (epoch or step), or their
    /// velocities between consecutive snapshots: w(i) − w(i−1), or with <paramref name="perInterval"/>
    /// (Δw/Δt) so that unevenly spaced snapshots (an imported checkpoint series) are comparable.
    /// </summary>
    public static Plot Trajectories(string runName, string layer, int unit, string which, int[] epochs, float[][] weights, bool velocities, (int From, int To)? window,
        string timeName, bool perInterval)
    {
        var yLabel = !velocities ? "w" : perInterval ? $"v = (w(i) − w(i−1)) / Δt, per {timeName}" : "v = w(e) − w(e−1)";
        var plot = New($"{runName}: {(velocities ? "velocities" : "weights")} of the {which} filter ({layer} filter {unit})", timeName, yLabel);
        ShadeWindow(plot, window);
        int count = weights.Length == 0 ? 0 : weights[0].Length;
        for (int k = 0; k < count; k++)
        {
            var x = (velocities ? epochs.Skip(1) : epochs).Select(e => (double)e).ToArray();
            var y = velocities
                ? Enumerable.Range(1, epochs.Length - 1).Select(e => ((double)weights[e][k] - weights[e - 1][k]) / (perInterval ? epochs[e] - epochs[e - 1] : 1)).ToArray()
                : weights.Select(w => (double)w[k]).ToArray();
            var s = plot.Add.Scatter(x, y);
            s.MarkerSize = 0;
            s.LineWidth = 1;
        }
        return plot;
    }

    /// <summary>The learned patterns of a layer's filters (final weights, averaged over input channels),
    /// hottest to coldest from left to right (Figs 10–11), as one heat map with gaps between filters.</summary>
    public static Plot FilterPatterns(string runName, string layer, TensorSnapshot weight, int[] hotFirst)
    {
        int filters = weight.Shape[0], channels = weight.Shape.Length > 1 ? weight.Shape[1] : 1;
        int h = weight.Shape.Length > 2 ? weight.Shape[2] : 1, w = weight.Shape.Length > 3 ? weight.Shape[3] : 1;
        // rows of filters, a blank cell between filters and two between rows (room for the labels)
        int columns = Math.Min(filters, (int)Math.Ceiling(Math.Sqrt(filters * 2.0)));
        int rows = (filters + columns - 1) / columns;
        var grid = new double[rows * (h + 2), columns * (w + 1) - 1];
        for (int i = 0; i < grid.GetLength(0); i++)
            for (int j = 0; j < grid.GetLength(1); j++) grid[i, j] = double.NaN;
        for (int position = 0; position < hotFirst.Length; position++)
        {
            int f = hotFirst[position], top = position / columns * (h + 2) + 2, left = position % columns * (w + 1);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    double sum = 0;
                    for (int c = 0; c < channels; c++) sum += weight.Values[((f * channels + c) * h + y) * w + x];
                    grid[top + y, left + x] = sum / channels;
                }
        }
        var plot = New($"{runName}: final {layer} filters by temperature, hottest first (reading order){(channels > 1 ? $", mean over {channels} input channels" : "")}", "", "");
        var map = plot.Add.Heatmap(grid);
        map.Colormap = new ScottPlot.Colormaps.Viridis();
        map.NaNCellColor = Colors.White;
        map.Extent = new CoordinateRect(0, grid.GetLength(1), 0, grid.GetLength(0));
        for (int position = 0; position < hotFirst.Length; position++)
        {
            // just above the filter: its top edge is 2 cells below its row's top
            var label = plot.Add.Text($"#{position + 1}: filter {hotFirst[position]}", position % columns * (w + 1), grid.GetLength(0) - position / columns * (h + 2) - 1.9);
            label.LabelFontSize = 11;
            label.LabelAlignment = Alignment.LowerLeft;
        }
        plot.Add.ColorBar(map);
        plot.Axes.Bottom.TickGenerator = new NumericManual([], []);
        plot.Axes.Left.TickGenerator = new NumericManual([], []);
        plot.Axes.SquareUnits();
        return plot;
    }

    /// <summary>MSD and mean |MD| against lag, log–log, for the hottest and coldest filter and the layer's
    /// mean, with τ¹ (diffusive) and τ² (ballistic) guide lines (Figs 12–13); or the drift-corrected MSD.</summary>
    public static Plot Diffusion(RunTables r, string layer, int hottest, int coldest, bool driftCorrected) =>
        Diffusion(r, layer, hottest, coldest, driftCorrected, "lag τ (snapshot intervals), log scale");

    /// <summary>As <see cref="Diffusion(RunTables, string, int, int, bool)"/>, with the lag axis labelled
    /// <paramref name="lagLabel"/> (an imported series' lags are in its time unit).</summary>
    public static Plot Diffusion(RunTables r, string layer, int hottest, int coldest, bool driftCorrected, string lagLabel)
    {
        var m = r.Msd!;
        var (layers, units, lags) = (m.Layer, m.Unit, m.Lag);
        var msd = driftCorrected ? m.MsdDriftCorrected : m.Msd;
        var md = m.AbsMeanDisplacement;
        var plot = New(driftCorrected ? $"{r.Name}: drift-corrected MSD of {layer} filters" : $"{r.Name}: MSD and mean |displacement| of {layer} filters",
            lagLabel, driftCorrected ? "MSD − (v̄τ)², log scale" : "log scale");
        double[] Curve(int unit, double[] values) => Enumerable.Range(0, layers.Length).Where(i => layers[i] == layer && units[i] == unit).Select(i => values[i]).ToArray();
        double[] LagsOf(int unit) => Enumerable.Range(0, layers.Length).Where(i => layers[i] == layer && units[i] == unit).Select(i => (double)lags[i]).ToArray();
        var allUnits = Enumerable.Range(0, layers.Length).Where(i => layers[i] == layer).Select(i => units[i]).Distinct().ToArray();
        foreach (var (unit, label, color) in new[] { (hottest, "hottest", Colors.C3), (coldest, "coldest", Colors.C0) })
        {
            var (x, y) = Positive(LagsOf(unit), Curve(unit, msd), true, true);
            Line(plot, x, y, $"{(driftCorrected ? "MSD_dc" : "MSD")}, {label} (filter {unit})", color);
            if (!driftCorrected)
            {
                var (x2, y2) = Positive(LagsOf(unit), Curve(unit, md), true, true);
                Line(plot, x2, y2, $"mean |MD|, {label}", color, 1).LinePattern = LinePattern.Dashed;
            }
        }
        if (allUnits.Length > 0)
        {
            var lagAxis = LagsOf(allUnits[0]);
            var mean = Enumerable.Range(0, lagAxis.Length).Select(i => allUnits.Average(u => Curve(u, msd)[i])).ToArray();
            var (x, y) = Positive(lagAxis, mean, true, true);
            Line(plot, x, y, "mean over the layer's filters", Colors.Gray, 2.5f);
            if (x.Length > 1)
            {
                // guides through the first point of the mean curve
                foreach (var (power, label) in new[] { (1.0, "∝ τ (diffusive)"), (2.0, "∝ τ² (ballistic)") })
                    Line(plot, [x[0], x[^1]], [y[0], y[0] + power * (x[^1] - x[0])], label, Colors.Black, 1).LinePattern = LinePattern.Dotted;
            }
        }
        LogAxis(plot.Axes.Left);
        LogAxis(plot.Axes.Bottom);
        plot.ShowLegend();
        return plot;
    }

    /// <summary>The gradient-noise signal s_I per layer over epochs with its spread (mean ± std over
    /// minibatches), log scale (the partial-entropy paper's Fig 1).</summary>
    public static Plot GradientNoise(RunTables r)
    {
        var g = r.GradientNoise!;
        var epochs = g.Select(row => row.Epoch).ToArray();
        var layers = g.Select(row => row.Layer).ToArray();
        var mean = g.Select(row => row.Mean).ToArray();
        var std = g.Select(row => row.Std).ToArray();
        var plot = New($"{r.Name}: gradient-noise signal s_I = mean |∂L/∂w| per layer (band: ± std over minibatches)", "epoch", "s_I, log scale");
        int index = 0;
        foreach (var layer in layers.Distinct())
        {
            var rows = Enumerable.Range(0, layers.Length).Where(i => layers[i] == layer && mean[i] > 0).ToArray();
            var color = Palette[index++ % Palette.Length];
            var x = rows.Select(i => (double)epochs[i]).ToArray();
            var lower = rows.Select(i => Math.Log10(Math.Max(mean[i] - std[i], mean[i] * 1e-3))).ToArray();
            var upper = rows.Select(i => Math.Log10(mean[i] + std[i])).ToArray();
            if (x.Length > 1)
            {
                Band(plot, x, lower, upper, color);
            }
            Line(plot, x, rows.Select(i => Math.Log10(mean[i])).ToArray(), layer, color);
        }
        LogAxis(plot.Axes.Left);
        plot.ShowLegend();
        return plot;
    }

    /// <summary>Prune-fraction curves of one layer: test accuracy as filters are removed in each order,
    /// mean over runs (and random draws) with a ± std band across runs when there are several.</summary>
    public static Plot PruneCurves(IReadOnlyList<RunTables> runs, string layer)
    {
        var plot = New($"{(runs.Count == 1 ? runs[0].Name : $"{runs.Count} runs")}: test accuracy as filters of {layer} are removed", "filters removed", "test accuracy");
        var points = runs.Where(r => r.Curves is not null).SelectMany(r => r.Curves!.Where(p => p.Layer == layer)
            .Select(p => (Run: r.Name, Series: $"{PruningPlan.Name(p.Criterion)}: {p.Order}", Removed: p.Removed, Accuracy: p.Accuracy))).ToList();
        int index = 0;
        foreach (var series in points.GroupBy(p => p.Series))
        {
            var color = Palette[index++ % Palette.Length];
            var byRemoved = series.GroupBy(p => p.Removed).OrderBy(g => g.Key)
                .Select(g => (X: (double)g.Key, Stats: Aggregation.MeanAndSampleStd(g.GroupBy(p => p.Run).Select(rg => rg.Average(p => p.Accuracy)).ToList()))).ToArray();
            var x = byRemoved.Select(p => p.X).ToArray();
            if (runs.Count > 1 && byRemoved.All(p => double.IsFinite(p.Stats.Std)))
            {
                Band(plot, x, byRemoved.Select(p => p.Stats.Mean - p.Stats.Std).ToArray(), byRemoved.Select(p => p.Stats.Mean + p.Stats.Std).ToArray(), color);
            }
            Line(plot, x, byRemoved.Select(p => p.Stats.Mean).ToArray(), series.Key, color);
        }
        plot.Axes.Bottom.TickGenerator = new NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend();
        plot.Legend.Alignment = Alignment.LowerLeft;
        return plot;
    }

    /// <summary>Test accuracy per epoch of several runs, one line each.</summary>
    public static Plot AccuracyAcrossRuns(IReadOnlyList<RunTables> runs)
    {
        var plot = New($"test accuracy of {runs.Count} runs", "epoch", "test accuracy");
        // An imported run has no metrics.parquet: the report says so beside this figure.
        foreach (var r in runs.Where(r => r.Metrics is not null))
        {
            var m = r.Metrics!;
            var (x, y) = Positive(m.Select(row => (double)row.Epoch), m.Select(row => row.TestAccuracy), false, false);
            Line(plot, x, y, r.Name, width: 1);
        }
        plot.ShowLegend();
        return plot;
    }

    /// <summary>The spread of a layer's filter temperatures across runs: each run's temperatures sorted
    /// from hottest to coldest, so runs with different hot filters can be compared.</summary>
    public static Plot TemperatureSpread(IReadOnlyList<RunTables> runs, string layer, string convention)
    {
        var plot = New($"filter temperatures of {layer} across {runs.Count} runs, hottest first", "rank (1 = hottest)", $"T ({convention})");
        foreach (var r in runs.Where(r => r.UnitLayers.Contains(layer)))
        {
            var t = r.UnitTemperatures(layer).T.OrderByDescending(v => v).ToArray();
            var s = plot.Add.Scatter(Enumerable.Range(1, t.Length).Select(i => (double)i).ToArray(), t);
            s.LegendText = r.Name;
            s.MarkerSize = 4;
        }
        plot.ShowLegend();
        return plot;
    }
}
