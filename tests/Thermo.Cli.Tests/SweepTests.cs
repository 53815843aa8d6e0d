using Thermo.Trainer.Tests;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary><c>thermo sweep</c> through the real executable.</summary>
public class SweepTests
{
    [Fact]
    public void A_tiny_sweep_fits_every_layer_against_eta_and_inverse_batch_size_and_resumes()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        using (var run = TrainingRun.Start(TinyData.QuickConfig(data, 2), dir["run"], dir.Path, new SilentProgress())) run.Run();
        string[] args = ["sweep", "--from", dir["run"], "--lr", "1e-3,2e-3,4e-3", "--batch-size", "32,64", "--epochs", "3", "--window", "last:2", "--jobs", "2", "--json"];
        var first = ThermoProcess.Run(dir.Path, args);
        Assert.True(first.Code == 0, first.Err);
        var fits = JsonDocument.Parse(first.Out).RootElement.GetProperty("fits").EnumerateArray().ToList();
        string[] layers = ["conv1", "conv2", "conv3", "conv4", "fc"];
        foreach (var parameter in new[] { "lr", "batch_size" })
            Assert.Equal(layers, fits.Where(f => f.GetProperty("parameter").GetString() == parameter).Select(f => f.GetProperty("layer").GetString()));
        Assert.All(fits, f => Assert.True(double.IsFinite(f.GetProperty("beta").GetDouble())));

        // Each grid point is an ordinary run that starts from the equilibrium model with its own η or B.
        var point = RunManifest.TryLoad(Path.Combine(dir["run"], "sweep", "lr=0.004"))!;
        Assert.Equal((0.004, 64, 3, RunStatus.Complete), (point.Config.Lr, point.Config.BatchSize, point.Config.Epochs, point.Status));
        var start = SnapshotReader.ReadFile(Path.Combine(dir["run"], "sweep", "lr=0.004", "snapshots", "epoch=00000.parquet"));
        var equilibrium = SnapshotReader.ReadFile(Path.Combine(dir["run"], "snapshots", "epoch=00002.parquet"));
        Assert.Equal(equilibrium.Tensors[0].Values, start.Tensors[0].Values);
        Assert.True(File.Exists(Path.Combine(dir["run"], "sweep", "temperature-vs-lr.png")));
        Assert.True(File.Exists(Path.Combine(dir["run"], "sweep", "temperature-vs-inverse-batch-size.png")));

        // A fit through the measured temperatures by hand: log T against log η, least squares.
        var sweep = Tables.Read(Path.Combine(dir["run"], "sweep", "sweep.parquet"), "sweep").ToDictionary(c => c.Name);
        var parameters = ((Column.StringColumn)sweep["parameter"]).values;
        var layerColumn = ((Column.StringColumn)sweep["layer"]).values;
        var x = ((Column.Float64Column)sweep["x"]).values;
        var t = ((Column.Float64Column)sweep["temperature"]).values;
        var rows = Enumerable.Range(0, x.Length).Where(i => parameters[i] == "lr" && layerColumn[i] == "fc").ToArray();
        double mx = rows.Average(i => Math.Log(x[i])), my = rows.Average(i => Math.Log(t[i]));
        double beta = rows.Sum(i => (Math.Log(x[i]) - mx) * (Math.Log(t[i]) - my)) / rows.Sum(i => Math.Pow(Math.Log(x[i]) - mx, 2));
        Assert.Equal(beta, fits.Single(f => f.GetProperty("parameter").GetString() == "lr" && f.GetProperty("layer").GetString() == "fc").GetProperty("beta").GetDouble(), 1e-9);

        var again = ThermoProcess.Run(dir.Path, [.. args[..^1]]);
        Assert.True(again.Code == 0, again.Err);
        Assert.Equal(5, again.Err.Split('\n').Count(l => l.Contains("reusing")));
    }
}
