using Thermo.Trainer.Tests;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Format;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;
using Thermo.Pipeline.Pruning;
using Thermo.Pipeline.Protocols;
using Thermo.Trainer.Data;
using Thermo.Trainer.Models;
using Thermo.Trainer.Evaluation;
using Thermo.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Cli.Tests;

/// <summary>Masked re-evaluation, structural removal and <c>thermo prune</c> / <c>reproduce</c> on tiny real runs.</summary>
public class PruningTests
{
    static string TrainedRun(TempDir dir, string name = "run", int epochs = 3, int[]? widths = null)
    {
        var data = Directory.Exists(dir["data"]) ? dir["data"] : TinyData.WriteMnistLike(dir["data"], 256, 64);
        var config = TinyData.QuickConfig(data, epochs) with { Widths = widths ?? [4, 4, 8, 8] };
        using var run = TrainingRun.Start(config, dir[name], dir.Path, new SilentProgress());
        run.Run();
        return dir[name];
    }

    [Fact]
    public void Two_runs_with_the_same_directory_name_stay_two_runs_with_paired_comparisons()
    {
        using var dir = new TempDir();
        var a = TrainedRun(dir, "a/seed-1");
        var b = TrainedRun(dir, "b/seed-1");
        var result = ThermoProcess.Run(dir.Path, "prune", a, b, "--window", "last:2", "--draws", "2", "--curves", "none", "--out", dir["table"]);
        Assert.True(result.Code == 0, result.Err);
        var table = File.ReadAllText(Path.Combine(dir["table"], RunLayout.TableFile));
        Assert.Contains("**Criterion: temperature** (2 runs", table);
        Assert.Contains("| without hottest − without coldest | 2 |", table);
        Assert.Equal(["a/seed-1", "b/seed-1"], PruningFiles.ReadResults(Path.Combine(dir["table"], RunLayout.ResultsFile)).Select(r => r.Run).Distinct().Order());
        Assert.True(File.Exists(Path.Combine(dir["table"], RunLayout.ComparisonsFile)));
        // The report over both, each pruned as above, also sees two runs.
        var report = ThermoProcess.Run(dir.Path, "report", a, b, "--out", dir["report"]);
        Assert.True(report.Code == 0, report.Err);
        var html = File.ReadAllText(Path.Combine(dir["report"], "figures.html"));
        Assert.Contains("sample standard deviation over 2 runs", html);
        Assert.Contains("pruning-comparisons", html);
    }

    static RunModel Open(TempDir dir, string run, TestSetCache tests) => RunModel.Open(run, dir.Path, tests, _ => { });

    static float[] Values(nn.Module<Tensor, Tensor> model, string name) =>
        model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(model.named_buffers())
            .First(p => p.Item1 == name).Item2.detach().cpu().data<float>().ToArray();

    [Fact]
    public void Unmasked_re_evaluation_reproduces_the_trainers_final_test_metrics_exactly()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        using var tests = new TestSetCache();
        using var model = Open(dir, run, tests);
        var final = TrainingRun.ReadMetrics(Path.Combine(run, RunLayout.MetricsFile)).Last();
        var (loss, accuracy) = model.Evaluate(FilterMask.None("conv1"));
        Assert.Equal(final.TestAccuracy, accuracy);
        Assert.Equal(final.TestLoss, loss);
    }

    [Fact]
    public void A_mask_zeroes_exactly_the_selected_filters_weights_and_biases_and_is_undone()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        using var tests = new TestSetCache();
        using var model = Open(dir, run, tests);
        var stored = model.Final.Tensors.ToDictionary(t => $"{t.Layer}.{t.Tensor}", t => t.Values);

        var unmasked = model.Evaluate(FilterMask.None("conv2"));
        var masked = model.Evaluate(new FilterMask("conv2", [1, 3]));
        Assert.NotEqual(unmasked, masked);
        foreach (var (name, values) in stored) Assert.Equal(values, Values(model.Model, name));   // undone

        model.ApplyPermanently(new FilterMask("conv2", [1, 3]));
        int row = 4 * 3 * 3;   // conv2.weight is [4, 4, 3, 3]
        var weight = Values(model.Model, "conv2.weight");
        var bias = Values(model.Model, "conv2.bias");
        for (int u = 0; u < 4; u++)
        {
            bool zeroed = u is 1 or 3;
            Assert.Equal(zeroed ? new float[row] : stored["conv2.weight"][(u * row)..((u + 1) * row)], weight[(u * row)..((u + 1) * row)]);
            Assert.Equal(zeroed ? 0f : stored["conv2.bias"][u], bias[u]);
        }
        foreach (var (name, values) in stored.Where(p => !p.Key.StartsWith("conv2.")))
            Assert.Equal(values, Values(model.Model, name));
    }

    [Theory]
    [InlineData("conv1")]
    [InlineData("conv4")]   // its successor is fc: one 4×4 block of input features per filter
    public void Removing_filters_physically_gives_the_masked_models_logits(string layer)
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        using var tests = new TestSetCache();
        using var model = Open(dir, run, tests);
        int[] widths = [4, 4, 8, 8];
        int[] removed = layer == "conv1" ? [0, 2] : [1, 5, 6];
        var (newWidths, pruned) = StructuralPruning.RemoveFilters(model.Final, widths, layer, removed, 28, 28);
        using var small = new FourConvNet(1, 28, 28, 10, newWidths, 0.1);
        ParameterLoader.Load(small, pruned, "pruned");
        model.ApplyPermanently(new FilterMask(layer, removed));
        using var expected = TestEvaluation.Logits(model.Model, model.TestX);
        using var actual = TestEvaluation.Logits(small, model.TestX);
        Assert.True((expected - actual).abs().max().item<float>() < 1e-4f);
        Assert.Equal(small.parameters().Sum(p => p.numel()), FourConvNet.Cost(1, 28, 28, 10, newWidths).Parameters);
        Assert.Equal(model.Model.parameters().Sum(p => p.numel()), FourConvNet.Cost(1, 28, 28, 10, widths).Parameters);
        // conv1 (5×5, 1→4 channels, 24×24 outputs) alone costs 4·1·25·576 multiply-accumulates
        Assert.Equal(4L * 25 * 576, FourConvNet.Cost(1, 28, 28, 10, widths).MultiplyAccumulates - FourConvNet.Cost(1, 28, 28, 10, [0, 4, 8, 8]).MultiplyAccumulates - 4L * 4 * 9 * 22 * 22);
    }

    [Fact]
    public void Prune_writes_its_tables_and_prints_every_row_of_the_paper()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        var result = ThermoProcess.Run(dir.Path, "prune", run, "--window", "last:2", "--structural", "--finetune", "1", "--out", dir["table"]);
        Assert.True(result.Code == 0, result.Err);
        foreach (var label in new[] { "Original model", "Without the 2 \"hottest\" filters", "With only the 3 \"hottest\" filters",
                     "Without the 2 \"coldest\" filters", "With only the 3 \"coldest\" filters", "Without the 2 smallest-L1 filters" })
            Assert.Contains(label, result.Out);
        var results = PruningFiles.ReadResults(Path.Combine(run, "pruning", "results.parquet"));
        Assert.Equal((3 + 5) * 5, results.Count);
        Assert.True(File.Exists(Path.Combine(run, "pruning", "curves.parquet")));
        Assert.True(File.Exists(Path.Combine(run, "pruning", "structural", "model.parquet")));
        Assert.Contains("finetune_test_accuracy", File.ReadAllText(Path.Combine(run, "pruning", "structural", "report.json")));
        Assert.Contains("| With only the 3 \"coldest\" filters |", File.ReadAllText(dir["table/table.md"]));
    }

    [Fact]
    public void Bad_input_is_one_line_naming_the_run_or_flag_and_writes_nothing()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        var other = TrainedRun(dir, "other", widths: [6, 4, 8, 8]);
        void Refused(string expected, params string[] args)
        {
            var r = ThermoProcess.Run(dir.Path, ["prune", .. args]);
            Assert.Equal(2, r.Code);
            Assert.Contains(expected, r.Err);
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.False(Directory.Exists(Path.Combine(run, "pruning")), "nothing written");
        }
        Refused("not analysed", run);
        Refused("runs of different models mixed", run, other, "--window", "last:2");
        Refused("has 4 filters; k = 4", run, "--k", "4", "--window", "last:2");
        Refused("no layer 'conv9'", run, "--layer", "conv9", "--window", "last:2");
        Refused("fc of", run, "--layer", "fc", "--window", "last:2");
        Refused("unknown criterion 'heat'", run, "--criteria", "heat");
        File.Delete(Path.Combine(run, "snapshots", "epoch=00003.parquet"));
        Refused("lacks the snapshots of epochs 3 ", run, "--window", "last:2");
    }

    [Fact]
    public void A_tiny_reproduction_produces_every_row_and_reuses_its_runs()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        string[] args = ["reproduce", "pruning-paper", "--data-dir", data, "--runs", "2", "--epochs", "3", "--window", "last:2",
            "--threads", "1", "--curves", "none", "--out", dir["repro"]];
        var first = ThermoProcess.Run(dir.Path, args);
        Assert.True(first.Code == 0, first.Err);
        var table = File.ReadAllText(dir["repro/tables/l2=0.001/table.md"]);
        foreach (var criterion in new[] { "temperature", "oscillation", "l1", "random" })
            Assert.Contains($"**Criterion: {criterion}** (2 runs", table);
        Assert.Equal(4 * 5, table.Split('\n').Count(l => l.StartsWith("| Original model") || l.StartsWith("| Without") || l.StartsWith("| With only")));
        Assert.Equal(2 * (3 + 5) * 5, PruningFiles.ReadResults(dir["repro/tables/l2=0.001/results.parquet"]).Count);
        Assert.Contains("Table 1", File.ReadAllText(dir["repro/tables/README.md"]));
        var again = ThermoProcess.Run(dir.Path, args);
        Assert.True(again.Code == 0, again.Err);
        Assert.Equal(2, again.Err.Split('\n').Count(l => l.Contains("reusing the complete run")));
        Assert.Equal(1e-3, RunManifest.TryLoad(dir["repro/l2=0.001/runs/seed-1"])!.Config.L2);
        Assert.Equal(0, RunManifest.TryLoad(dir["repro/l2=0.001/runs/seed-1"])!.Config.WeightDecay);
    }

    [Fact]
    public void A_ledger_keeps_each_run_compactly_trains_only_what_it_lacks_and_tabulates_from_itself_alone()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        string[] Args(string runs, params string[] more) => ["reproduce", "pruning-paper", "--data-dir", data, "--runs", runs, "--epochs", "3",
            "--window", "last:2", "--threads", "1", "--curves", "none", "--draws", "2", "--out", dir["work"], "--ledger", dir["ledger"], .. more];
        var first = ThermoProcess.Run(dir.Path, Args("2"));
        Assert.True(first.Code == 0, first.Err);
        foreach (var seed in new[] { 1, 2 })
        {
            var entry = dir[$"ledger/l2=0.001/seed-{seed}"];
            foreach (var f in new[] { "run.json", "metrics.parquet", "gradnoise.parquet", "snapshots/epoch=00003.parquet", "analysis/temperature.parquet", "pruning/results.parquet" })
                Assert.True(File.Exists(Path.Combine(entry, f)), $"{entry} lacks {f}");
            Assert.Single(Directory.GetFiles(Path.Combine(entry, "snapshots")));
            Assert.False(Directory.Exists(Path.Combine(entry, "checkpoint")));
            var source = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(entry, "run.json")))!["dataset"]!["source"]!.GetValue<string>();
            Assert.False(Path.IsPathRooted(source), $"the ledger records no machine path ({source})");
        }
        var table = File.ReadAllText(dir["ledger/tables/l2=0.001/table.md"]);
        Assert.Contains("(2 runs", table);
        Assert.Contains("Table 1", File.ReadAllText(dir["ledger/tables/README.md"]));

        // The work directory gone, a third seed trains only seed 3 and the table covers all three.
        Directory.Delete(dir["work"], recursive: true);
        var more = ThermoProcess.Run(dir.Path, Args("3"));
        Assert.True(more.Code == 0, more.Err);
        Assert.Single(more.Err.Split('\n'), l => l.Contains("seed 3:"));
        Assert.DoesNotContain("seed 1:", more.Err);
        Assert.False(Directory.Exists(dir["work/l2=0.001/runs/seed-1"]));
        Assert.Contains("(3 runs", File.ReadAllText(dir["ledger/tables/l2=0.001/table.md"]));
        Assert.Equal(3, PruningFiles.ReadResults(dir["ledger/tables/l2=0.001/results.parquet"]).Select(r => r.Run).Distinct().Count());

        // Tabulating alone trains nothing; a ledger of another configuration is refused.
        var alone = ThermoProcess.Run(dir.Path, Args("4", "--no-train"));
        Assert.True(alone.Code == 0, alone.Err);
        Assert.False(Directory.Exists(dir["work/l2=0.001/runs/seed-4"]));
        Assert.Contains("(3 runs", File.ReadAllText(dir["ledger/tables/l2=0.001/table.md"]));
        // (Other data would be another condition, named by its data: only settings a condition's name
        // does not carry can collide.)
        var other = ThermoProcess.Run(dir.Path, [.. Args("2"), "--test-limit", "32"]);
        Assert.Equal(2, other.Code);
        Assert.Contains("another configuration", other.Err);
    }
}

/// <summary>Every model of the papers goes through the same stages: train, snapshot, analyse, re-evaluate.</summary>
public class ModelStageTests
{
    static string CifarLike(string dir)
    {
        Directory.CreateDirectory(dir);
        var random = new Random(3);
        byte[] Records(int count)
        {
            var bytes = new byte[count * Cifar.RecordBytes];
            random.NextBytes(bytes);
            for (int r = 0; r < count; r++) bytes[r * Cifar.RecordBytes] = (byte)(r % 10);
            return bytes;
        }
        File.WriteAllBytes(Path.Combine(dir, "data_batch_1.bin"), Records(64));
        File.WriteAllBytes(Path.Combine(dir, "test_batch.bin"), Records(32));
        return dir;
    }

    [Theory]
    [InlineData("lenet", "mnist", null, "conv1", 6)]
    [InlineData("mlp2", "mnist", "16", "fc1", 16)]       // rows of fc1: 16 units of 784 weights
    [InlineData("cifarnet", "cifar10", "4,4,8,8,8", "conv1", 4)]
    [InlineData("gcn", "mnist", null, "gcn1", 32)]        // rows of the graph convolutions' weights
    [InlineData("gat", "mnist", null, "gat1", 64)]
    public void A_model_trains_analyses_by_unit_and_its_final_model_is_rebuilt_exactly(string model, string dataset, string? widths, string layer, int units)
    {
        using var dir = new TempDir();
        var data = dataset == "mnist" ? TinyData.WriteMnistLike(dir["data"], 128, 32) : CifarLike(dir["data"]);
        var config = TinyData.QuickConfig(data, 2) with
        {
            Model = model, Dataset = dataset, Widths = widths?.Split(',').Select(int.Parse).ToArray(), BatchSize = 32, Optimizer = "sgd", Lr = 1e-2,
        };
        using (var run = TrainingRun.Start(config, dir["run"], dir.Path, new SilentProgress())) run.Run();
        var result = Engine.analyze(dir["run"], AnalysisOptions.Default.WithWindow(WindowSpec.NewLast(2)));
        var groups = result.Groups.Where(g => g.Key.Layer == layer).ToArray();
        Assert.Equal(units, groups.Length);
        var final = SnapshotReader.ReadFile(Path.Combine(dir["run"], "snapshots", "epoch=00002.parquet"));
        var weight = final.Tensors.Single(t => t.Layer == layer && t.Tensor == "weight");
        Assert.All(groups, g => Assert.Equal(weight.Values.Length / units, g.Temperature.Weights));
        using var tests = new TestSetCache();
        using var rebuilt = RunModel.Open(dir["run"], dir.Path, tests, _ => { });
        var last = TrainingRun.ReadMetrics(Path.Combine(dir["run"], RunLayout.MetricsFile)).Last();
        Assert.Equal((last.TestLoss, last.TestAccuracy), rebuilt.Evaluate(FilterMask.None(layer)));
    }
}
