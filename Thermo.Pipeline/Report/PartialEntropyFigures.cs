using ScottPlot;
using Thermo.Analysis;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Pipeline.Protocols;
using Thermo.Pipeline.Pruning;
using static Thermo.Pipeline.Protocols.PartialEntropyReproduction;

namespace Thermo.Pipeline.Report;

/// <summary>
/// The partial-entropy grid's figures: best (and final) test accuracy against the radius R per choice of
/// smoothed layers (the paper's Figs 3–4), the test-accuracy curves over epochs with plain
/// cross-entropy's signal peak marked, and plain cross-entropy's s_I per layer (its Fig 1).
/// </summary>
public static class PartialEntropyFigures
{
    static readonly Color[] Palette = [Colors.C0, Colors.C1, Colors.C2, Colors.C3, Colors.C4, Colors.C5, Colors.C6, Colors.C7];
    const int Width = 960, Height = 540;

    /// <summary>Writes the figures into <paramref name="dir"/>; returns their file names.</summary>
    public static IReadOnlyList<string> Write(string dir, IReadOnlyList<Outcome> outcomes, IReadOnlyList<Summary> summaries,
        IReadOnlyList<(int Seed, List<GradientNoiseRow> Rows)> plainNoise, IReadOnlyDictionary<(string Point, int Seed), List<MetricsRow>> metrics)
    {
        // A smaller grid than the last one leaves no figure of a loss it no longer has.
        foreach (var stale in Directory.EnumerateFiles(dir, "accuracy-against-radius-*.png").Concat(Directory.EnumerateFiles(dir, "difference-from-ce-*.png")))
            File.Delete(stale);
        var files = new List<string>();
        var plain = outcomes.Where(o => o.Point.IsPlain).ToList();
        foreach (var loss in outcomes.Where(o => !o.Point.IsPlain).Select(o => o.Point.Loss).Distinct())
        {
            var file = $"accuracy-against-radius-{loss}.png";
            AtomicFiles.Write(Path.Combine(dir, file), temp => AccuracyAgainstRadius(loss, outcomes, plain).SavePng(temp, Width, Height));
            files.Add(file);
            if (plain.Count > 0)
            {
                var paired = $"difference-from-ce-{loss}.png";
                AtomicFiles.Write(Path.Combine(dir, paired), temp => DifferenceAgainstRadius(loss, summaries).SavePng(temp, Width, Height));
                files.Add(paired);
            }
        }
        var peaks = plainNoise.SelectMany(n => GradientNoise.SignalPeaks(n.Rows.ToArray())).ToList();
        if (outcomes.Any(o => !o.Point.IsPlain))
        {
            var largest = outcomes.Where(o => !o.Point.IsPlain).Max(o => o.Point.Radius);
            var loss = outcomes.First(o => !o.Point.IsPlain).Point.Loss;
            var file = "test-accuracy-curves.png";
            AtomicFiles.Write(Path.Combine(dir, file), temp => Curves(loss, largest, outcomes, metrics, peaks).SavePng(temp, Width, Height));
            files.Add(file);
        }
        if (plainNoise.Count > 0)
        {
            var first = plainNoise.OrderBy(n => n.Seed).First();
            var file = "signal-ce.png";
            AtomicFiles.Write(Path.Combine(dir, file), temp => Signal(first.Seed, first.Rows).SavePng(temp, Width, Height));
            files.Add(file);
        }
        return files;
    }

    /// <summary>Mean best test accuracy (error bars: sample sd over seeds) against log10 R, one line per
    /// smoothing; the final accuracy dotted; plain cross-entropy as a horizontal line.</summary>
    static Plot AccuracyAgainstRadius(string loss, IReadOnlyList<Outcome> outcomes, IReadOnlyList<Outcome> plain)
    {
        var plot = new Plot();
        int seeds = outcomes.Where(o => o.Point.Loss == loss).Select(o => o.Seed).Distinct().Count();
        plot.Title($"{loss.ToUpperInvariant()}: test accuracy against the smoothing radius R (mean ± sd over {seeds} seed{(seeds == 1 ? "" : "s")})");
        plot.XLabel("R, log scale");
        plot.YLabel("test accuracy, %");
        int index = 0;
        foreach (var layers in outcomes.Where(o => o.Point.Loss == loss).Select(o => o.Point.LayersText).Distinct())
        {
            var color = Palette[index++ % Palette.Length];
            var byRadius = outcomes.Where(o => o.Point.Loss == loss && o.Point.LayersText == layers && o.Point.Radius > 0)
                .GroupBy(o => o.Point.Radius).OrderBy(g => g.Key).ToList();
            var x = byRadius.Select(g => Math.Log10(g.Key)).ToArray();
            var best = byRadius.Select(g => Aggregation.MeanAndSampleStd(g.Select(o => 100 * o.BestTestAccuracy).ToList())).ToArray();
            var final = byRadius.Select(g => 100 * g.Average(o => o.FinalTestAccuracy)).ToArray();
            var line = plot.Add.Scatter(x, best.Select(b => b.Mean).ToArray(), color);
            line.LegendText = $"best, smoothing {layers}";
            line.MarkerSize = 7;
            if (seeds > 1)
            {
                var bars = plot.Add.ErrorBar(x, best.Select(b => b.Mean).ToArray(), best.Select(b => double.IsNaN(b.Std) ? 0 : b.Std).ToArray());
                bars.Color = color;
            }
            var last = plot.Add.Scatter(x, final, color);
            last.LegendText = $"final, smoothing {layers}";
            last.LinePattern = LinePattern.Dotted;
            last.MarkerSize = 4;
        }
        if (plain.Count > 0)
        {
            var ce = plot.Add.HorizontalLine(100 * plain.Average(o => o.BestTestAccuracy), 1.5f, Colors.Black, LinePattern.Dashed);
            ce.LegendText = $"best, plain cross-entropy ({plain.Count} seed{(plain.Count == 1 ? "" : "s")})";
            var ceFinal = plot.Add.HorizontalLine(100 * plain.Average(o => o.FinalTestAccuracy), 1f, Colors.Gray, LinePattern.Dotted);
            ceFinal.LegendText = "final, plain cross-entropy";
        }
        RadiusAxis(plot, outcomes.Where(o => o.Point.Loss == loss).Select(o => o.Point.Radius));
        plot.ShowLegend(Alignment.LowerLeft);
        return plot;
    }

    /// <summary>A tick at each radius of the grid, labelled with R itself (the axis holds log10 R).</summary>
    static void RadiusAxis(Plot plot, IEnumerable<double> radii)
    {
        var ticks = radii.Where(r => r > 0).Distinct().Order().ToArray();
        plot.Axes.Bottom.SetTicks(ticks.Select(Math.Log10).ToArray(), ticks.Select(r => r.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        if (ticks.Length > 0) plot.Axes.SetLimitsX(Math.Log10(ticks[0]) - 0.15, Math.Log10(ticks[^1]) + 0.15);
    }

    /// <summary>Final test accuracy minus plain cross-entropy's on the same seed, in points, against log10 R:
    /// the mean per smoothing with its 95 % t interval (where there are two or more pairs) and zero marked.</summary>
    static Plot DifferenceAgainstRadius(string loss, IReadOnlyList<Summary> summaries)
    {
        var plot = new Plot();
        var mine = summaries.Where(s => s.Point.Loss == loss && s.FinalAgainstPlain is not null).ToList();
        int pairs = mine.Count == 0 ? 0 : mine.Max(s => s.FinalAgainstPlain!.Runs);
        plot.Title($"{loss.ToUpperInvariant()}: final accuracy − plain cross-entropy's, same seed ({pairs} pairs; mean, 95 % interval)");
        plot.XLabel("R, log scale");
        plot.YLabel("difference, percentage points");
        plot.Add.HorizontalLine(0, 1, Colors.Black, LinePattern.Dashed);
        int index = 0;
        foreach (var group in mine.GroupBy(s => s.Point.LayersText))
        {
            var color = Palette[index++ % Palette.Length];
            var points = group.OrderBy(s => s.Point.Radius).ToList();
            var x = points.Select(s => Math.Log10(s.Point.Radius)).ToArray();
            var mean = points.Select(s => s.FinalAgainstPlain!.MeanDifference).ToArray();
            // Nudged apart sideways so that the intervals of the choices do not hide each other.
            var shifted = x.Select(v => v + 0.02 * (index - 2)).ToArray();
            var line = plot.Add.Scatter(shifted, mean, color);
            line.LegendText = $"smoothing {group.Key}";
            line.MarkerSize = 7;
            var half = points.Select(s => double.IsNaN(s.FinalAgainstPlain!.High95) ? 0 : s.FinalAgainstPlain!.High95 - s.FinalAgainstPlain!.MeanDifference).ToArray();
            plot.Add.ErrorBar(shifted, mean, half).Color = color;
        }
        RadiusAxis(plot, mine.Select(s => s.Point.Radius));
        plot.ShowLegend(Alignment.LowerLeft);
        return plot;
    }

    /// <summary>Test accuracy per epoch (mean over seeds) of plain cross-entropy and of each smoothing of
    /// one loss at one radius, with the epochs where plain cross-entropy's signal peaked.</summary>
    static Plot Curves(string loss, double radius, IReadOnlyList<Outcome> outcomes, IReadOnlyDictionary<(string Point, int Seed), List<MetricsRow>> metrics, IReadOnlyList<SignalPeak> peaks)
    {
        var plot = new Plot();
        plot.Title($"test accuracy per epoch: plain cross-entropy and {loss.ToUpperInvariant()} at R = {radius:G3} (mean over seeds)");
        plot.XLabel("epoch");
        plot.YLabel("test accuracy, %");
        var points = outcomes.Select(o => o.Point).Where(pt => pt.IsPlain || (pt.Loss == loss && pt.Radius == radius)).DistinctBy(pt => pt.Name).ToList();
        int index = 0;
        foreach (var point in points)
        {
            var runs = metrics.Where(m => m.Key.Point == point.Name).Select(m => m.Value).ToList();
            var epochs = runs.SelectMany(r => r.Select(m => m.Epoch)).Where(e => e > 0).Distinct().Order().ToArray();
            // Mean over the seeds that reached each epoch.
            var mean = epochs.Select(e => 100 * runs.SelectMany(r => r.Where(m => m.Epoch == e)).Average(m => m.TestAccuracy)).ToArray();
            var line = plot.Add.Scatter(epochs.Select(e => (double)e).ToArray(), mean, point.IsPlain ? Colors.Black : Palette[index++ % Palette.Length]);
            line.LegendText = point.IsPlain ? "plain cross-entropy" : $"smoothing {point.LayersText}";
            line.MarkerSize = 0;
            line.LineWidth = point.IsPlain ? 2 : 1.5f;
        }
        foreach (var layer in peaks.GroupBy(k => k.Layer))
        {
            // The median over seeds: one seed whose flat signal peaks late must not move the mark.
            var epochs = layer.Select(k => (double)k.Epoch).Order().ToArray();
            var at = epochs.Length % 2 == 1 ? epochs[epochs.Length / 2] : (epochs[epochs.Length / 2 - 1] + epochs[epochs.Length / 2]) / 2;
            var mark = plot.Add.VerticalLine(at, 1, Colors.Gray, LinePattern.Dashed);
            mark.LegendText = $"s_I peak of {layer.Key} (plain cross-entropy, median epoch {at:0.#} of {epochs.Length} seeds)";
        }
        plot.ShowLegend();
        return plot;
    }

    /// <summary>Plain cross-entropy's s_I per layer, log scale, ± sd over minibatches, each peak marked.</summary>
    static Plot Signal(int seed, IReadOnlyList<GradientNoiseRow> rows)
    {
        var plot = new Plot();
        plot.Title($"plain cross-entropy, seed {seed}: training signal s_I = mean |∂L/∂w| per layer (band: ± sd over minibatches)");
        plot.XLabel("epoch");
        plot.YLabel("s_I, log10");
        var peaks = GradientNoise.SignalPeaks(rows.ToArray());
        int index = 0;
        foreach (var layer in rows.Select(r => r.Layer).Distinct())
        {
            var color = Palette[index++ % Palette.Length];
            var mine = rows.Where(r => r.Layer == layer && r.Mean > 0).OrderBy(r => r.Epoch).ToArray();
            var x = mine.Select(r => (double)r.Epoch).ToArray();
            if (x.Length > 1)
            {
                var band = plot.Add.FillY(x, mine.Select(r => Math.Log10(Math.Max(r.Mean - r.Std, r.Mean * 1e-3))).ToArray(), mine.Select(r => Math.Log10(r.Mean + r.Std)).ToArray());
                band.FillColor = color.WithAlpha(0.18);
                band.LineWidth = 0;
            }
            var line = plot.Add.Scatter(x, mine.Select(r => Math.Log10(r.Mean)).ToArray(), color);
            line.LegendText = layer;
            line.MarkerSize = 0;
            line.LineWidth = 1.5f;
            if (peaks.FirstOrDefault(k => k.Layer == layer) is { } peak)
            {
                var mark = plot.Add.VerticalLine(peak.Epoch, 1, color, LinePattern.Dashed);
                mark.LegendText = $"{layer} peaks at epoch {peak.Epoch}";
            }
        }
        plot.ShowLegend();
        return plot;
    }
}
