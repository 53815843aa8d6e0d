using Thermo.Analysis.Run;
using Thermo.Trainer.Tests;
using Thermo.Cli;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary>Bad input through the real executable: one line naming what and where, exit code 2, nothing written or overwritten.</summary>
public class CliTests
{
    static void AssertBadInput((int Code, string Out, string Err) result, params string[] mentions)
    {
        Assert.True(result.Code == ExitCodes.BadInput, $"exit {result.Code}, stderr: {result.Err}");
        var lines = result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("thermo: error: ", lines[0]);
        foreach (var m in mentions) Assert.Contains(m, lines[0]);
    }

    [Fact]
    public void Bad_flags_and_data_are_named_and_write_nothing()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 20, 10);
        string[] Args(params string[] extra) => ["train", "--data-dir", data, "--out", dir["run"], .. extra];
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--model", "resnet")), "--model", "resnet");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--dataset", "imagenet")), "--dataset", "imagenet");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--optimizer", "rmsprop")), "--optimizer", "rmsprop");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--epochs", "0")), "--epochs");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--lr", "-1")), "--lr");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--batch-size", "0")), "--batch-size");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--epochs", "many")), "many");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--no-such-flag")), "--no-such-flag");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--model", "gcn", "--graph", "voronoi")), "--graph", "voronoi", "slic, tiles");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--model", "fourconv", "--graph", "slic")), "--graph", "only gcn and gat");
        AssertBadInput(ThermoProcess.Run(dir.Path, ["train", "--data-dir", dir["nowhere"], "--out", dir["run"]]), "--data-dir", "nowhere");
        File.WriteAllBytes(Path.Combine(data, "train-images-idx3-ubyte"), [0, 0, 9, 9]);
        AssertBadInput(ThermoProcess.Run(dir.Path, Args()), "train-images-idx3-ubyte", "bad IDX magic");
        Assert.False(Directory.Exists(dir["run"]), "bad input leaves no run directory behind");
    }

    [Fact]
    public void The_pruning_reproductions_bad_settings_are_named_by_their_flags_and_write_nothing()
    {
        using var dir = new TempDir();
        string[] Args(params string[] extra) => ["reproduce", "pruning-paper", "--out", dir["work"], .. extra];
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--dataset", "cifar")), "--dataset: the pruning paper's CNN runs on mnist, mnist-10k or fashion-mnist, not 'cifar'");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--full", "--runs", "1")), "--runs: need at least 2 runs for a standard deviation, got 1");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--full", "--epochs", "100")), "--window: last:N must have N in 1..100 (--epochs), got last:150");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--l2", "-1")), "--l2: must be non-negative, got -1");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--draws", "0")), "--draws: must be positive");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--adam-eps", "0")), "--adam-eps: must be positive, got 0");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--no-train")), "--no-train: needs --ledger (the runs to tabulate)");
        AssertBadInput(ThermoProcess.Run(dir.Path, Args("--no-train", "--ledger", dir["ledger"], "--scheduler", "slurm")),
            "--no-train: trains nothing, so there is nothing to submit; drop --scheduler slurm");
        AssertBadInput(ThermoProcess.Run(dir.Path, ["reproduce", "partial-entropy", "--out", dir["work"], "--smoothings", ""]),
            "--smoothings and --radii: a smoothed loss needs at least one choice of layers and one radius");
        Assert.False(Directory.Exists(dir["work"]), "bad input leaves no reproduction directory behind");
        Assert.False(Directory.Exists(dir["ledger"]), "bad input leaves no ledger behind");
    }

    [Fact]
    public void A_complete_run_is_not_overwritten_and_a_resume_must_match_its_config()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 64, 32);
        string[] train = ["train", "--data-dir", data, "--epochs", "1", "--widths", "4,4,8,8", "--out", dir["run"]];
        Assert.Equal(0, ThermoProcess.Run(dir.Path, train).Code);
        var before = File.ReadAllBytes(dir["run/snapshots/epoch=00001.parquet"]);
        var manifest = File.ReadAllText(dir["run/run.json"]);

        AssertBadInput(ThermoProcess.Run(dir.Path, train), dir["run"], "complete run", "--force");
        AssertBadInput(ThermoProcess.Run(dir.Path, "train", "--resume", dir["run"], "--lr", "0.5", "--epochs", "2"), "--lr", "differs");
        AssertBadInput(ThermoProcess.Run(dir.Path, "train", "--resume", dir["run"]), "already complete");
        AssertBadInput(ThermoProcess.Run(dir.Path, "train", "--resume", dir["nothing"]), "no run");
        AssertBadInput(ThermoProcess.Run(dir.Path, [.. train, "--force", "--optimizer", "lbfgs"]), "--optimizer");
        Assert.Equal(before, File.ReadAllBytes(dir["run/snapshots/epoch=00001.parquet"]));
        Assert.Equal(manifest, File.ReadAllText(dir["run/run.json"]));

        // --force replaces it; --resume with a larger --epochs extends it.
        Assert.Equal(0, ThermoProcess.Run(dir.Path, [.. train, "--force"]).Code);
        var extended = ThermoProcess.Run(dir.Path, "train", "--resume", dir["run"], "--epochs", "2");
        Assert.True(extended.Code == 0, extended.Err);
        Assert.Equal(2, RunManifest.TryLoad(dir["run"])!.LastCompleteEpoch);
    }

    [Fact]
    public void A_preset_spells_a_papers_protocol_and_given_flags_override_it()
    {
        Assert.Equal(["--json", "train", "--model", "lenet", "--dataset", "mnist", "--optimizer", "sgd", "--momentum", "0", "--lr", "1e-2", "--lr-step", "300", "--lr-gamma", "0.1",
            "--batch-size", "32", "--l2", "4e-2", "--weight-decay", "0", "--dropout", "0", "--out", "r", "--epochs", "5"],
            TrainPresets.Expand(["--json", "train", "--preset", "thermo-lenet", "--out", "r", "--epochs", "5"]));
        Assert.Equal(["analyze", "--preset", "x"], TrainPresets.Expand(["analyze", "--preset", "x"]));

        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 128, 32);
        var run = ThermoProcess.Run(dir.Path, "train", "--preset=thermo-lenet", "--data-dir", data, "--epochs", "1", "--lr", "5e-3", "--threads", "1", "--out", dir["run"], "--quiet");
        Assert.True(run.Code == 0, run.Err);
        var config = RunManifest.TryLoad(dir["run"])!.Config;
        Assert.Equal(("lenet", "sgd", 0.0, 5e-3, 32, 0.04, 300, 1), (config.Model, config.Optimizer, config.Momentum, config.Lr, config.BatchSize, config.L2, config.LrStep, config.Epochs));
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["train", "--preset", "nope"], "--preset: 'nope' is not a preset"),
            (["train", "--preset", "thermo-lenet", "--resume", dir["run"]], "--preset: cannot be given with --config or --resume"),
        })
        {
            var bad = ThermoProcess.Run(dir.Path, args);
            Assert.True(bad.Code == 2, bad.Err);
            Assert.Contains(expected, bad.Err);
        }
    }

    [Fact]
    public void A_gcn_run_records_its_graph_for_resume_and_config()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 64, 32);
        var first = ThermoProcess.Run(dir.Path, "train", "--model", "gcn", "--data-dir", data, "--epochs", "1", "--batch-size", "32", "--threads", "1", "--out", dir["run"]);
        Assert.True(first.Code == 0, first.Err);
        Assert.Equal("slic", RunManifest.TryLoad(dir["run"])!.Config.Graph);
        Assert.Contains("SLIC superpixels", first.Err);

        AssertBadInput(ThermoProcess.Run(dir.Path, "train", "--resume", dir["run"], "--epochs", "2", "--graph", "tiles"), "--graph", "differs");
        var resumed = ThermoProcess.Run(dir.Path, "train", "--resume", dir["run"], "--epochs", "2", "--graph", "slic");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.DoesNotContain("computing SLIC", resumed.Err);   // the graphs come from the cache

        // --config carries the graph: a tiles run copied from its run.json trains on tiles again.
        var tiles = ThermoProcess.Run(dir.Path, "train", "--model", "gat", "--graph", "tiles", "--data-dir", data, "--epochs", "1", "--batch-size", "32", "--threads", "1", "--out", dir["tiles"]);
        Assert.True(tiles.Code == 0, tiles.Err);
        var copy = ThermoProcess.Run(dir.Path, "train", "--config", dir["tiles/run.json"], "--out", dir["copy"]);
        Assert.True(copy.Code == 0, copy.Err);
        Assert.Equal("tiles", RunManifest.TryLoad(dir["copy"])!.Config.Graph);
        var original = SnapshotSeries.ReadRun(dir["tiles"]).Last();
        var copied = SnapshotSeries.ReadRun(dir["copy"]).Last();
        Assert.Equal(original.Tensors.Select(t => t.Values), copied.Tensors.Select(t => t.Values));
    }
}
