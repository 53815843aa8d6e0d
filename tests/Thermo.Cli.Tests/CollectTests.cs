using Thermo.Trainer.Tests;
using DuckDB.NET.Data;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Run;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary><c>thermo collect</c>, read back by DuckDB with Hive partitioning.</summary>
public class CollectTests
{
    static List<object?[]> Query(string sql) => DuckDb.Rows(sql);

    [Fact]
    public void Many_runs_become_one_hive_partitioned_dataset_that_DuckDB_reads_with_a_run_column()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        // Two runs named seed-1 in different directories, and a third: the ids must tell them apart.
        string[] runs = [dir["sweeps/a/seed-1"], dir["sweeps/b=2/seed-1"], dir["sweeps/b=2/seed-2"]];
        foreach (var (run, seed) in runs.Select((r, i) => (r, i + 1L)))
        {
            using (var training = TrainingRun.Start(TinyData.QuickConfig(data, 3) with { Seed = seed }, run, dir.Path, new SilentProgress())) training.Run();
            var analysed = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2", "--quiet");
            Assert.True(analysed.Code == 0, analysed.Err);
        }
        var pruned = ThermoProcess.Run(dir.Path, "prune", runs[0], "--window", "last:2", "--curves", "none", "--draws", "1", "--quiet");
        Assert.True(pruned.Code == 0, pruned.Err);

        var collected = ThermoProcess.Run(dir.Path, "collect", dir["sweeps"], "--out", dir["dataset"], "--json");
        Assert.True(collected.Code == 0, collected.Err);
        var ids = JsonDocument.Parse(collected.Out).RootElement.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("id").GetString()).ToList();
        Assert.Equal(["a/seed-1", "b=2/seed-1", "seed-2"], ids);

        // Every run's temperature rows, with the run as a column decoded from the partition path.
        var temperature = Query($"""
            SELECT run, layer, temperature FROM read_parquet('{dir["dataset"]}/table=temperature/*/*.parquet', hive_partitioning = true)
            """);
        Assert.Equal(ids.Order(StringComparer.Ordinal), temperature.Select(r => (string)r[0]!).Distinct().Order(StringComparer.Ordinal));
        for (int i = 0; i < runs.Length; i++)
        {
            var own = Table.Read(RunLayout.Temperature(runs[i]), "temperature");
            var layer = Table.GetStrings(own, "layer", runs[i]);
            var value = Table.GetDoubles(own, "temperature", runs[i]);
            var collectedRows = temperature.Where(r => (string)r[0]! == ids[i]).ToList();
            Assert.Equal(layer.Length, collectedRows.Count);
            Assert.Equal(value.Order(), collectedRows.Select(r => (double)r[2]!).Order());
        }

        // The whole dataset at once: every table, told apart by the partition column `table`.
        var everything = Query($"""
            SELECT "table", count(DISTINCT run), count(*) FROM read_parquet('{dir["dataset"]}/**/*.parquet', hive_partitioning = true, union_by_name = true)
            GROUP BY ALL ORDER BY "table"
            """);
        Assert.Contains(everything, r => (string)r[0]! == "temperature" && (long)r[1]! == 3 && (long)r[2]! == temperature.Count);
        Assert.Contains(everything, r => (string)r[0]! == "runs" && (long)r[1]! == 3 && (long)r[2]! == 3);

        // The runs table joins each run to its configuration; metrics and pruning results come along.
        var seeds = Query($"""
            SELECT r.run, r.seed, count(*) FROM read_parquet('{dir["dataset"]}/table=runs/*/*.parquet', hive_partitioning = true) r
            JOIN read_parquet('{dir["dataset"]}/table=metrics/*/*.parquet', hive_partitioning = true) m USING (run)
            GROUP BY ALL ORDER BY r.seed, r.run
            """);
        Assert.Equal([("a/seed-1", 1L, 4L), ("b=2/seed-1", 2L, 4L), ("seed-2", 3L, 4L)], seeds.Select(r => ((string)r[0]!, (long)r[1]!, (long)r[2]!)));
        var pruning = Query($"""
            SELECT DISTINCT run, run_directory FROM read_parquet('{dir["dataset"]}/table=pruning/*/*.parquet', hive_partitioning = true)
            """);
        // The table's own run column, renamed: the partition's run column is the collection's id.
        var written = Table.GetStrings(Table.Read(RunLayout.PruningResults(runs[0]), "pruning"), "run", runs[0]).Distinct().Single();
        Assert.Equal(("a/seed-1", written), ((string)pruning.Single()[0]!, (string)pruning.Single()[1]!));

        // Collecting again replaces the dataset; a directory that is not a collection is never replaced.
        var again = ThermoProcess.Run(dir.Path, "collect", runs[1], "--out", dir["dataset"], "--json");
        Assert.True(again.Code == 0, again.Err);
        Assert.Single(Directory.EnumerateDirectories(dir["dataset/table=runs"]));
        Directory.CreateDirectory(dir["mine"]);
        File.WriteAllText(dir["mine/notes.txt"], "keep");
        var refused = ThermoProcess.Run(dir.Path, "collect", runs[1], "--out", dir["mine"]);
        Assert.Equal(2, refused.Code);
        Assert.Contains("--out: exists and is not a collection", refused.Err);
        var file = ThermoProcess.Run(dir.Path, "collect", runs[1], "--out", dir["mine/notes.txt"]);
        Assert.Equal(2, file.Code);
        Assert.Contains("--out: is a file", file.Err);
        Assert.Equal("keep", File.ReadAllText(dir["mine/notes.txt"]));
    }

    [Fact]
    public void A_corrupt_table_is_named_and_leaves_no_dataset()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        using (var training = TrainingRun.Start(TinyData.QuickConfig(data, 2), dir["run"], dir.Path, new SilentProgress())) training.Run();
        var metrics = RunLayout.Metrics(dir["run"]);
        File.WriteAllBytes(metrics, File.ReadAllBytes(metrics)[..100]);
        var result = ThermoProcess.Run(dir.Path, "collect", dir["run"], "--out", dir["dataset"]);
        Assert.Equal(2, result.Code);
        Assert.Contains("metrics.parquet", result.Err);
        Assert.False(Directory.Exists(dir["dataset"]));
        var missing = ThermoProcess.Run(dir.Path, "collect", dir["nowhere"], "--out", dir["dataset"]);
        Assert.Equal(2, missing.Code);
        Assert.Contains("no such directory", missing.Err);
    }
}
