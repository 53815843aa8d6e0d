using ScottPlot;

namespace Thermo.Pipeline.Report;

/// <summary>Temperature against learning rate or 1/batch size, log–log, with each layer's fitted power law
/// (the papers' T-vs-η and T-vs-1/B plots).</summary>
public static class SweepFigure
{
    public static void Write(string path, string parameter, IReadOnlyList<(string Layer, double X, double T)> points,
        IReadOnlyList<(string Layer, double Beta, double C, double RSquared)> fits, int width = 960, int height = 540)
    {
        var plot = new Plot();
        var x = parameter == "lr" ? "learning rate η" : "1 / batch size";
        plot.Title($"equilibrium temperature of each layer against {x}");
        plot.XLabel($"{x}, log scale");
        plot.YLabel("T, log scale");
        Color[] palette = [Colors.C0, Colors.C1, Colors.C2, Colors.C3, Colors.C4, Colors.C5, Colors.C6, Colors.C7];
        int index = 0;
        foreach (var layer in points.Select(p => p.Layer).Distinct())
        {
            var color = palette[index++ % palette.Length];
            var mine = points.Where(p => p.Layer == layer && p.X > 0 && p.T > 0).OrderBy(p => p.X).ToArray();
            var dots = plot.Add.Scatter(mine.Select(p => Math.Log10(p.X)).ToArray(), mine.Select(p => Math.Log10(p.T)).ToArray(), color);
            dots.LineWidth = 0;
            dots.MarkerSize = 7;
            var fit = fits.FirstOrDefault(f => f.Layer == layer);
            dots.LegendText = double.IsFinite(fit.Beta) ? $"{layer}: β = {fit.Beta:F2}, R² = {fit.RSquared:F2}" : layer;
            if (double.IsFinite(fit.Beta) && mine.Length >= 2)
            {
                double[] ends = [Math.Log10(mine[0].X), Math.Log10(mine[^1].X)];
                var line = plot.Add.Scatter(ends, ends.Select(e => Math.Log10(fit.C) + fit.Beta * e).ToArray(), color);
                line.MarkerSize = 0;
                line.LinePattern = LinePattern.Dashed;
            }
        }
        foreach (var axis in new IAxis[] { plot.Axes.Left, plot.Axes.Bottom })
            axis.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                LabelFormatter = v => $"{Math.Pow(10, v):G2}",
            };
        plot.ShowLegend();
        plot.SavePng(path, width, height);
    }
}
