using DuckDB.NET.Data;
using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Trainer.Training;

namespace Thermo.Trainer.Tests;

public class TrainingTests
{
    static RunManifest Train(TrainConfig config, string runDir, string artifacts)
    {
        using var run = TrainingRun.Start(config, runDir, artifacts, new SilentProgress());
        return run.Run();
    }

    static Snapshot[] Snapshots(string runDir) => SnapshotSeries.ReadRun(runDir).ToArray();

    [Fact]
    public void The_same_seed_gives_identical_snapshots_and_another_seed_does_not()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"]);
        var config = TinyData.QuickConfig(data);
        Train(config, dir["a"], dir.Path);
        Train(config, dir["b"], dir.Path);
        Train(config with { Seed = 2 }, dir["c"], dir.Path);
        var a = Snapshots(dir["a"]);
        var b = Snapshots(dir["b"]);
        Assert.Equal(3, a.Length);
        for (int e = 0; e < a.Length; e++)
            for (int t = 0; t < a[e].Tensors.Length; t++)
                Assert.Equal(a[e].Tensors[t].Values, b[e].Tensors[t].Values);
        Assert.NotEqual(a[2].Tensors[0].Values, Snapshots(dir["c"])[2].Tensors[0].Values);
    }

    [Fact]
    public void A_run_directory_holds_manifest_metrics_gradient_noise_and_every_tensor()
    {
        using var dir = new TempDir();
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"]), epochs: 3);
        var manifest = Train(config, dir["run"], dir.Path);
        Assert.Equal(RunStatus.Complete, manifest.Status);
        Assert.Equal(3, manifest.LastCompleteEpoch);
        Assert.Equal(3 * 10, manifest.LastStep); // 640 images / 64 per batch
        var reloaded = RunManifest.TryLoad(dir["run"])!;
        // Records compare arrays by reference: compare Widths by value below, everything else here.
        Assert.Equal(config, reloaded.Config with { Widths = config.Widths });
        Assert.Equal([4, 4, 8, 8], reloaded.Config.Widths!);

        var metrics = TrainingRun.ReadMetrics(dir["run/metrics.parquet"]);
        Assert.Equal([0, 1, 2, 3], metrics.Select(m => m.Epoch));
        Assert.True(metrics[^1].TestAccuracy > 0.3, $"the tiny task is learnable: {metrics[^1].TestAccuracy}");
        var noise = TrainingRun.ReadGradNoise(dir["run/gradnoise.parquet"]);
        Assert.Equal(3 * 5, noise.Count);
        Assert.All(noise, n => { Assert.True(n.Mean > 0); Assert.True(n.Std >= 0); Assert.Equal(10, n.Batches); });

        var last = Snapshots(dir["run"])[^1];
        Assert.Equal((3, 30L), (last.Epoch, last.Step));
        Assert.Equal(["conv1", "conv2", "conv3", "conv4", "fc"], last.Tensors.Select(t => t.Layer).Distinct());
        Assert.Equal(manifest.ParameterCount, last.Tensors.Sum(t => (long)t.Values.Length));
        Assert.Single(Directory.GetDirectories(dir["run/checkpoint"]));
    }

    [Fact]
    public void Snapshots_read_by_DuckDB_give_the_same_per_layer_sums_as_the_reader()
    {
        using var dir = new TempDir();
        Train(TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"])), dir["run"], dir.Path);
        var ours = Snapshots(dir["run"])
            .SelectMany(s => s.Tensors.Select(t => (s.Epoch, t.Layer, t.Tensor, Sum: t.Values.Sum(v => (double)v), SumSq: t.Values.Sum(v => (double)v * v), Count: t.Values.Length)))
            .ToDictionary(r => (r.Epoch, r.Layer, r.Tensor));
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT epoch, layer, tensor, sum(value::DOUBLE), sum(value::DOUBLE * value), count(*), max(unit), max("offset")
            FROM read_parquet('{dir["run"]}/snapshots/*.parquet') GROUP BY ALL
            """;
        using var reader = command.ExecuteReader();
        int rows = 0;
        while (reader.Read())
        {
            var key = (reader.GetInt32(0), reader.GetString(1), reader.GetString(2));
            var expected = ours[key];
            Assert.Equal(expected.Sum, reader.GetDouble(3), 9);
            Assert.Equal(expected.SumSq, reader.GetDouble(4), 9);
            Assert.Equal(expected.Count, reader.GetInt64(5));
            rows++;
        }
        Assert.Equal(ours.Count, rows);
    }

    [Fact]
    public void Unit_and_offset_index_filters_and_their_flat_weights()
    {
        using var dir = new TempDir();
        Train(TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"]), epochs: 1), dir["run"], dir.Path);
        var conv1 = Snapshots(dir["run"])[1].Tensors.Single(t => t.Layer == "conv1" && t.Tensor == "weight");
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"""SELECT unit, "offset", value FROM read_parquet('{dir["run"]}/snapshots/epoch=00001.parquet') WHERE layer = 'conv1' AND tensor = 'weight'""";
        using var reader = command.ExecuteReader();
        int n = 0;
        while (reader.Read())
        {
            int unit = reader.GetInt32(0), offset = reader.GetInt32(1);
            Assert.Equal(conv1.Values[unit * 25 + offset], reader.GetFloat(2));
            n++;
        }
        Assert.Equal(4 * 25, n);
    }

    [Fact]
    public void Snapshot_options_keep_chosen_layers_every_nth_epoch_per_step_and_in_arrow()
    {
        using var dir = new TempDir();
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"], train: 128, test: 64), epochs: 5) with
        {
            SnapshotLayers = ["conv1", "fc"], SnapshotEvery = 2, StepSnapshotEpochs = 1, Format = "arrow",
        };
        Train(config, dir["run"], dir.Path);
        var files = SnapshotSeries.ListEpochFiles(dir["run"]);
        Assert.Equal([0, 2, 4, 5], files.Select(f => f.Time));
        Assert.All(files, f => Assert.EndsWith(".arrow", f.Path));
        var last = SnapshotReader.ReadFile(files[^1].Path);
        Assert.Equal(["conv1", "fc"], last.Tensors.Select(t => t.Layer).Distinct());
        var steps = Directory.GetFiles(dir["run/snapshots/steps"]).Order().ToArray();
        Assert.Equal(2, steps.Length); // 128 images / 64 per batch in the last epoch
        Assert.Equal((5, 10L), (SnapshotReader.ReadFile(steps[^1]).Epoch, SnapshotReader.ReadFile(steps[^1]).Step));
        Assert.Equal(last.Tensors[0].Values, SnapshotReader.ReadFile(steps[^1]).Tensors[0].Values);
    }

    [Fact]
    public void Unknown_snapshot_layers_are_named()
    {
        using var dir = new TempDir();
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"], 20, 10)) with { SnapshotLayers = ["conv9"] };
        var e = Assert.Throws<SettingException>(() => TrainingRun.Start(config, dir["run"], dir.Path, new SilentProgress()));
        Assert.Equal(nameof(TrainConfig.SnapshotLayers), e.Setting);
        Assert.Contains("unknown layer 'conv9'", e.Message);
        Assert.Contains("conv1, conv2, conv3, conv4, fc", e.Message);
    }
}

public class KerasL2Tests
{
    [Fact]
    public void The_l2_gradient_equals_autograd_of_the_penalty_and_reports_its_value()
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        TorchSharp.torch.manual_seed(3);
        var kernels = new[] { TorchSharp.torch.randn(4, 3, 5, 5).requires_grad_(), TorchSharp.torch.randn(10, 7).requires_grad_() };
        // Autograd of l2·Σ‖w‖² is the oracle; the grads start from a prior gradient the term is added to.
        var prior = kernels.Select(k => TorchSharp.torch.randn_like(k)).ToArray();
        var oracle = kernels.Select(k => k.detach().clone().requires_grad_()).ToArray();
        var penalty = oracle.Select(k => k.square().sum()).Aggregate((a, b) => a + b) * 0.01;
        penalty.backward();
        for (int i = 0; i < kernels.Length; i++) kernels[i].grad = prior[i].clone();
        double value = TrainingRun.AddL2(kernels, 0.01);
        Assert.Equal(penalty.item<float>(), value, 3);
        for (int i = 0; i < kernels.Length; i++)
            Assert.True((kernels[i].grad! - prior[i] - oracle[i].grad!).abs().max().item<float>() < 1e-5f);
    }

    [Fact]
    public void An_l2_run_shrinks_the_kernels_and_records_l2()
    {
        using var dir = new TempDir();
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"]), epochs: 1) with { WeightDecay = 0 };
        using (var run = TrainingRun.Start(config, dir["plain"], dir.Path, new SilentProgress())) run.Run();
        using (var run = TrainingRun.Start(config with { L2 = 0.05 }, dir["l2"], dir.Path, new SilentProgress())) run.Run();
        var plain = SnapshotSeries.ReadRun(dir["plain"]).Last();
        var l2 = SnapshotSeries.ReadRun(dir["l2"]).Last();
        Assert.Equal(0.05, RunManifest.TryLoad(dir["l2"])!.Config.L2);
        var conv1 = plain.Tensors.Single(t => t.Layer == "conv1" && t.Tensor == "weight");
        var conv1L2 = l2.Tensors.Single(t => t.Layer == "conv1" && t.Tensor == "weight");
        Assert.NotEqual(conv1.Values, conv1L2.Values);
        // The penalty pulls kernels towards zero: the L2 run ends with smaller kernel norms.
        double Norm(Snapshot s) => s.Tensors.Where(t => t.Tensor == "weight" && t.Shape.Length >= 2).Sum(t => t.Values.Sum(v => (double)v * v));
        Assert.True(Norm(l2) < Norm(plain), $"L2 run's kernel norm {Norm(l2)} is not below the plain run's {Norm(plain)}");
    }

    [Fact]
    public void Keras_time_based_decay_divides_each_step_rate_by_one_plus_decay_times_steps_taken()
    {
        using var dir = new TempDir();
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"]), epochs: 2) with { WeightDecay = 0, LrDecay = 0.25, AdamEps = 1e-7 };
        using (var run = TrainingRun.Start(config, dir["run"], dir.Path, new SilentProgress())) run.Run();
        var metrics = TrainingRun.ReadMetrics(RunLayout.Metrics(dir["run"]));
        var manifest = RunManifest.TryLoad(dir["run"])!;
        Assert.Equal((0.25, 1e-7), (manifest.Config.LrDecay, manifest.Config.AdamEps));
        // Each epoch's row holds the mean of lr / (1 + 0.25·s) over its own steps s, counted over the run.
        for (int e = 1; e <= 2; e++)
        {
            long first = metrics[e - 1].Step, last = metrics[e].Step;
            double expected = 0;
            for (long s = first; s < last; s++) expected += config.Lr / (1 + 0.25 * s);
            Assert.Equal(expected / (last - first), metrics[e].Lr, 12);
        }

        // A decay so strong that only the first step moves anything: epoch 2 leaves the weights where they were.
        using (var run = TrainingRun.Start(config with { LrDecay = 1e12, Optimizer = "sgd", Momentum = 0 }, dir["frozen"], dir.Path, new SilentProgress())) run.Run();
        var snapshots = SnapshotSeries.ReadRun(dir["frozen"]).ToArray();
        float[] Conv1(int e) => snapshots[e].Tensors.Single(t => t.Layer == "conv1" && t.Tensor == "weight").Values;
        double Moved(int a, int b) => Conv1(a).Zip(Conv1(b), (x, y) => Math.Abs((double)x - y)).Max();
        Assert.True(Moved(0, 1) > 0, "the first step (rate lr) moved nothing");
        Assert.True(Moved(1, 2) < 1e-6 * Moved(0, 1), $"epoch 2 moved conv1 by {Moved(1, 2)} at a rate of about 1e-15");
    }
}

public class InitialisationTests
{
    static Snapshot Start(TrainConfig config, TempDir dir, string name)
    {
        using (var run = TrainingRun.Start(config, dir[name], dir.Path, new SilentProgress())) run.Run();
        return SnapshotSeries.ReadRun(dir[name]).First();
    }

    [Fact]
    public void Kaiming_and_xavier_draw_kernels_at_their_scale_zero_the_biases_and_are_recorded()
    {
        using var dir = new TempDir();
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"]), epochs: 1);
        foreach (var kind in new[] { "kaiming", "xavier" })
        {
            var start = Start(config with { Init = kind }, dir, kind);
            Assert.Equal(kind, RunManifest.TryLoad(dir[kind])!.Config.Init);
            foreach (var kernel in start.Tensors.Where(t => t.Tensor == "weight" && t.Shape.Length >= 2))
            {
                int fanIn = kernel.Shape[1..].Aggregate(1, (a, b) => a * b);
                int fanOut = kernel.Shape[0] * kernel.Shape[2..].Aggregate(1, (a, b) => a * b);
                double std = Math.Sqrt(kernel.Values.Select(v => (double)v * v).Average());
                if (kind == "kaiming")
                {
                    // He normal, fan-in, ReLU gain √2: std √(2 / fan_in); sampling error shrinks with size
                    double expected = Math.Sqrt(2.0 / fanIn), tolerance = 4 / Math.Sqrt(kernel.Values.Length);
                    Assert.True(Math.Abs(std / expected - 1) < Math.Max(0.1, tolerance), $"{kernel.Layer}: std {std}, expected {expected}");
                }
                else
                {
                    double bound = Math.Sqrt(6.0 / (fanIn + fanOut));
                    Assert.True(kernel.Values.All(v => Math.Abs(v) <= bound + 1e-6), $"{kernel.Layer}: beyond ±{bound}");
                    Assert.True(Math.Abs(std / (bound / Math.Sqrt(3)) - 1) < Math.Max(0.1, 4 / Math.Sqrt(kernel.Values.Length)), $"{kernel.Layer}: std {std}");
                }
                var bias = start.Tensors.Single(t => t.Layer == kernel.Layer && t.Tensor == "bias");
                Assert.All(bias.Values, v => Assert.Equal(0f, v));
            }
        }
        // default leaves each layer's own initialisation: the same first snapshot as a run that never heard of --init
        var plain = Start(config, dir, "plain");
        var explicitDefault = Start(config with { Init = "default" }, dir, "default");
        Assert.Equal(plain.Tensors[0].Values, explicitDefault.Tensors[0].Values);
        Assert.NotEqual(plain.Tensors.First(t => t.Tensor == "bias").Values.Select(v => v == 0), Enumerable.Repeat(true, plain.Tensors.First(t => t.Tensor == "bias").Values.Length));
        Assert.Throws<SettingException>(() => (config with { Init = "orthogonal" }).Validate());
    }
}
