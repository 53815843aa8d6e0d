using Thermo.Trainer.Tests;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
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

    [Fact]
    public void A_per_step_sweep_measures_step_temperatures_and_fits_the_sgd_shapes()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        // Plain SGD, no momentum, as the thermodynamic paper trains.
        var config = TinyData.QuickConfig(data, 2) with { Optimizer = "sgd", Momentum = 0, Lr = 1e-2 };
        using (var run = TrainingRun.Start(config, dir["run"], dir.Path, new SilentProgress())) run.Run();
        var result = ThermoProcess.Run(dir.Path, "sweep", "--from", dir["run"], "--lr", "5e-3,1e-2", "--batch-size", "16,32,64", "--epochs", "2", "--steps", "1", "--json");
        Assert.True(result.Code == 0, result.Err);
        var json = JsonDocument.Parse(result.Out).RootElement;
        Assert.Equal("step", json.GetProperty("time_unit").GetString());

        // Each point's temperature is its per-step analysis: every step of its last epoch, Δt = one step.
        var sweep = Table.Read(Path.Combine(dir["run"], "sweep", "sweep.parquet"), "sweep");
        var parameter = Table.GetStrings(sweep, "parameter", "sweep");
        var value = Table.GetDoubles(sweep, "value", "sweep");
        var layer = Table.GetStrings(sweep, "layer", "sweep");
        var temperature = Table.GetDoubles(sweep, "temperature", "sweep");
        Assert.All(Table.GetStrings(sweep, "time_unit", "sweep"), u => Assert.Equal("step", u));
        var point = Path.Combine(dir["run"], "sweep", "batch-size=16");
        Assert.Equal(1, RunManifest.TryLoad(point)!.Config.StepSnapshotEpochs);
        var own = Table.Read(Path.Combine(RunLayout.StepAnalysis(point), "temperature.parquet"), "temperature");
        var ownLayer = Table.GetStrings(own, "layer", point);
        var ownT = Table.GetDoubles(own, "temperature", point);
        var ownFrom = Table.GetInts(own, "window_from", point);
        int fc = Array.FindIndex(ownLayer, l => l == "fc");
        // 256 images in batches of 16: 16 steps an epoch, so the last epoch's step snapshots are steps 17..32.
        Assert.Equal(17, ownFrom[fc]);
        int row = Enumerable.Range(0, layer.Length).Single(i => parameter[i] == "batch_size" && value[i] == 16 && layer[i] == "fc");
        Assert.Equal(ownT[fc], temperature[row]);

        // T = a + b/B by least squares over the batch sizes, by hand.
        var rows = Enumerable.Range(0, layer.Length).Where(i => parameter[i] == "batch_size" && layer[i] == "fc").ToArray();
        double mx = rows.Average(i => 1 / value[i]), my = rows.Average(i => temperature[i]);
        double b = rows.Sum(i => (1 / value[i] - mx) * (temperature[i] - my)) / rows.Sum(i => Math.Pow(1 / value[i] - mx, 2));
        var fit = json.GetProperty("fits").EnumerateArray().Single(f => f.GetProperty("parameter").GetString() == "batch_size" && f.GetProperty("layer").GetString() == "fc");
        Assert.Equal(b, fit.GetProperty("affine_slope").GetDouble(), 1e-9 * Math.Abs(b));
        Assert.Equal(my - b * mx, fit.GetProperty("affine_intercept").GetDouble(), 1e-9 * Math.Abs(my));
        // Two learning rates: a power law, but no affine fit (it is the batch size's).
        var lrFit = json.GetProperty("fits").EnumerateArray().First(f => f.GetProperty("parameter").GetString() == "lr");
        Assert.True(double.IsFinite(lrFit.GetProperty("beta").GetDouble()));
        Assert.Equal(JsonValueKind.String, lrFit.GetProperty("affine_slope").ValueKind); // NaN, written as a string by the JSON writer
    }
}
