using Thermo.Analysis;
using Thermo.Pipeline.Protocols;
using Thermo.Trainer.Tests;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary><c>thermo reproduce partial-entropy</c> on a tiny grid: what it trains, keeps and tabulates.</summary>
public class PartialEntropyReproductionTests
{
    static string[] Grid(string data, TempDir dir, params string[] more) => GridOver("0.05", data, dir, more);

    static string[] GridOver(string radii, string data, TempDir dir, params string[] more) =>
        ["reproduce", "partial-entropy", "--dataset", "mnist", "--data-dir", data, "--losses", "pla", "--smoothings", "fc2,fc1+fc2",
         "--radii", radii, "--runs", "2", "--epochs", "2", "--threads", "1", "--out", dir["work"], "--ledger", dir["ledger"], .. more];

    [Fact]
    public void A_tiny_grid_trains_every_point_per_seed_keeps_the_training_records_and_tabulates_from_them()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        var first = ThermoProcess.Run(dir.Path, Grid(data, dir, "--jobs", "2"));
        Assert.True(first.Code == 0, first.Err);

        string[] points = ["ce", "pla-fc2-R=0.05", "pla-fc1+fc2-R=0.05"];
        foreach (var point in points)
            foreach (var seed in new[] { 1, 2 })
            {
                var entry = dir[$"ledger/{point}/seed-{seed}"];
                Assert.Equal(["gradnoise.parquet", "metrics.parquet", "run.json"], Directory.GetFiles(entry).Select(Path.GetFileName).Order());
                Assert.Empty(Directory.GetDirectories(entry));
            }
        // The smoothed points train what they say: plain SGD with momentum, Kaiming, the layers and radius named.
        var smoothed = RunManifest.TryLoad(dir["ledger/pla-fc1+fc2-R=0.05/seed-2"])!.Config;
        Assert.Equal(("pla", "fc1,fc2", 0.05, 2L), (smoothed.Loss, string.Join(",", smoothed.SmoothLayers!), smoothed.Radius, smoothed.Seed));
        Assert.Equal(("sgd", 0.9, 0.0, 0.0, "kaiming", 256), (smoothed.Optimizer, smoothed.Momentum, smoothed.WeightDecay, smoothed.Dropout, smoothed.Init, smoothed.BatchSize));
        Assert.Equal("ce", RunManifest.TryLoad(dir["ledger/ce/seed-1"])!.Config.Loss);

        // Each row's best and final accuracy, read back from the kept metrics independently.
        var table = Table.Read(dir["ledger/tables/partial-entropy.parquet"], "partial_entropy");
        var names = Table.GetStrings(table, "point", "t");
        var seeds = Table.GetInts(table, "seed", "t");
        var best = Table.GetDoubles(table, "best_test_accuracy", "t");
        var final = Table.GetDoubles(table, "final_test_accuracy", "t");
        Assert.Equal(6, names.Length);
        for (int i = 0; i < names.Length; i++)
        {
            var metrics = TrainingRun.ReadMetrics(dir[$"ledger/{names[i]}/seed-{seeds[i]}/metrics.parquet"]).Where(m => m.Epoch > 0).ToList();
            Assert.Equal(metrics.Max(m => m.TestAccuracy), best[i]);
            Assert.Equal(metrics[^1].TestAccuracy, final[i]);
        }
        var summary = File.ReadAllText(dir["ledger/tables/README.md"]);
        Assert.Contains("| pla-fc1+fc2-R=0.05 | 2 |", summary);
        Assert.Contains("| pla-fc2-R=0.05 − pla-fc1+fc2-R=0.05 |", summary);
        // The same comparison in comparisons.parquet: 2 pairs, and smoothing both layers doubles the dose.
        var comparisons = Table.Read(dir["ledger/tables/comparisons.parquet"], "partial_entropy_comparisons");
        int row = Array.IndexOf(Table.GetStrings(comparisons, "point_b", "t"), "pla-fc1+fc2-R=0.05");
        Assert.True(row >= 0, "no comparison with pla-fc1+fc2-R=0.05");
        Assert.Equal(("same radius", "pla-fc2-R=0.05", 2), (Table.GetStrings(comparisons, "family", "t")[row], Table.GetStrings(comparisons, "point_a", "t")[row], Table.GetInts(comparisons, "pairs", "t")[row]));
        Assert.Equal(2.0, Table.GetDoubles(comparisons, "dose_b", "t")[row] / Table.GetDoubles(comparisons, "dose_a", "t")[row], 12);
        foreach (var figure in new[] { "accuracy-against-radius-pla.png", "difference-from-ce-pla.png", "test-accuracy-curves.png", "signal-ce.png" })
            Assert.True(new FileInfo(dir[$"ledger/tables/{figure}"]).Length > 1000, figure);
        // One peak per layer (fc1, fc2, out) per run.
        Assert.Equal(6 * 3, Table.GetStrings(Table.Read(dir["ledger/tables/signal-peaks.parquet"], "signal_peaks"), "layer", "t").Length);

        // A child process trains bit for bit what `thermo train` with the same flags trains.
        var direct = ThermoProcess.Run(dir.Path, "train", "--model", "mlp2", "--dataset", "mnist", "--data-dir", data, "--epochs", "2", "--seed", "2",
            "--optimizer", "sgd", "--lr", "2e-3", "--momentum", "0.9", "--batch-size", "256", "--weight-decay", "0", "--dropout", "0", "--init", "kaiming",
            "--loss", "pla", "--smooth-layers", "fc1,fc2", "--radius", "0.05", "--samples", "4", "--threads", "1", "--train-limit", "20000", "--out", dir["direct"]);
        Assert.True(direct.Code == 0, direct.Err);
        Assert.Equal(TrainingRun.ReadMetrics(dir["direct/metrics.parquet"]).Select(m => (m.TrainLoss, m.TestAccuracy)),
            TrainingRun.ReadMetrics(dir["ledger/pla-fc1+fc2-R=0.05/seed-2/metrics.parquet"]).Select(m => (m.TrainLoss, m.TestAccuracy)));

        // Without a ledger, --no-train tabulates the complete runs in --out, but only this grid's.
        var withoutLedger = Grid(data, dir, "--no-train").ToList();
        withoutLedger.RemoveRange(withoutLedger.IndexOf("--ledger"), 2);
        var fromWork = ThermoProcess.Run(dir.Path, [.. withoutLedger]);
        Assert.True(fromWork.Code == 0, fromWork.Err);
        Assert.Equal(6, Table.GetStrings(Table.Read(dir["work/tables/partial-entropy.parquet"], "partial_entropy"), "point", "t").Length);
        var otherWork = ThermoProcess.Run(dir.Path, [.. withoutLedger, "--samples", "2"]);
        Assert.Equal(2, otherWork.Code);
        Assert.Contains("--out", otherWork.Err);
        Assert.Contains("another configuration", otherWork.Err);

        // The work directory gone, a larger grid with --no-train tabulates what the ledger holds and trains nothing.
        Directory.Delete(dir["work"], recursive: true);
        var alone = ThermoProcess.Run(dir.Path, GridOver("0.05,0.5", data, dir, "--no-train"));
        Assert.True(alone.Code == 0, alone.Err);
        Assert.False(Directory.Exists(dir["work"]));
        Assert.Equal(6, Table.GetStrings(Table.Read(dir["ledger/tables/partial-entropy.parquet"], "partial_entropy"), "point", "t").Length);
        // A ledger of another configuration is refused.
        var other = ThermoProcess.Run(dir.Path, [.. Grid(data, dir), "--samples", "2"]);
        Assert.Equal(2, other.Code);
        Assert.Contains("another configuration", other.Err);
    }

    [Theory]
    [InlineData("--l2", "0.001", "--l2: not an option of reproduce partial-entropy")]
    [InlineData("--radii", "0.1,-1", "--radii: each R must be positive")]
    [InlineData("--losses", "pla,mse", "--losses: 'mse' is not pla or plea")]
    [InlineData("--jobs", "0", "--jobs: must be at least 1")]
    [InlineData("--window", "last:3", "--window: not an option of reproduce partial-entropy")]
    [InlineData("--smoothings", "fc1,fc3", "--smoothings: unknown layer 'fc3' (layers of mlp2 with weights: fc1, fc2, out)")]
    [InlineData("--smoothings", "fc1+", "--smoothings: 'fc1+' names an empty layer")]
    [InlineData("--radii", "0.01,0.010", "--losses/--smoothings/--radii: the grid holds pla-fc1-R=0.01 twice")]
    [InlineData("--jobs", "2", "--jobs: give --threads too")]
    public void Bad_input_is_one_line_naming_the_flag_and_writes_nothing(string flag, string value, string message)
    {
        using var dir = new TempDir();
        var result = ThermoProcess.Run(dir.Path, "reproduce", "partial-entropy", flag, value, "--out", dir["work"]);
        Assert.Equal(2, result.Code);
        Assert.Contains(message, result.Err);
        Assert.False(Directory.Exists(dir["work"]));
    }

    [Fact]
    public void The_pruning_reproduction_refuses_the_grids_flags()
    {
        using var dir = new TempDir();
        var result = ThermoProcess.Run(dir.Path, "reproduce", "pruning-paper", "--radii", "0.1", "--out", dir["work"]);
        Assert.Equal(2, result.Code);
        Assert.Contains("--radii: not an option of reproduce pruning-paper", result.Err);
    }
}
