using Thermo.Trainer.Tests;
using Thermo.Cli;
using DuckDB.NET.Data;
using Thermo.Analysis.Format;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary><c>thermo analyze</c> through the real executable, checked against SQL run by DuckDB.</summary>
public class AnalyzeTests
{
    internal static string TrainedRun(TempDir dir, int epochs = 5, string name = "run")
    {
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"], 256, 64), epochs);
        using var run = TrainingRun.Start(config, dir[name], dir.Path, new SilentProgress());
        run.Run();
        return dir[name];
    }

    [Fact]
    public void An_empty_or_corrupt_manifest_is_named_unless_the_snapshots_alone_are_asked_for()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir, 3);
        var manifest = Path.Combine(run, "run.json");
        foreach (var (content, says) in new[] { ("", "is empty"), ("{\"config\": ", "is not valid JSON"), ("[1, 2]", "not a run manifest object") })
        {
            File.WriteAllText(manifest, content);
            var bad = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2");
            Assert.Equal(ExitCodes.BadInput, bad.Code);
            Assert.Contains(says, bad.Err);
            Assert.Contains("--no-manifest", bad.Err);
            Assert.False(Directory.Exists(Path.Combine(run, "analysis")), "nothing written");
        }
        var alone = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "last:2", "--no-manifest");
        Assert.True(alone.Code == 0, alone.Err);
        Assert.True(File.Exists(Path.Combine(run, "analysis", "temperature.parquet")));
    }

    [Fact]
    public void Per_step_temperatures_equal_a_SQL_computation_over_the_step_snapshots()
    {
        using var dir = new TempDir();
        var config = TinyData.QuickConfig(TinyData.WriteMnistLike(dir["data"], 256, 64), 2) with { StepSnapshotEpochs = 1 };
        using (var training = TrainingRun.Start(config, dir["run"], dir.Path, new SilentProgress())) training.Run();
        var run = dir["run"];
        var result = ThermoProcess.Run(dir.Path, "analyze", run, "--steps", "--window", "last:3", "--groups", "layer", "--msd-layers", "none");
        Assert.True(result.Code == 0, result.Err);
        Assert.Contains("Δt = 1 step", result.Out);
        Assert.False(Directory.Exists(Path.Combine(run, "analysis")), "the epoch analysis is not written");

        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        // 256 images in batches of 64: 4 steps per epoch, so epoch 2's step snapshots are steps 5..8;
        // last:3 is steps 5..8, velocities at steps 6, 7, 8.
        command.CommandText = $"""
            WITH velocities AS (
              SELECT layer, step,
                     value::DOUBLE - lag(value::DOUBLE) OVER (PARTITION BY layer, tensor, unit, "offset" ORDER BY step) AS v
              FROM read_parquet('{run}/snapshots/steps/*.parquet')
              WHERE tensor = 'weight' AND step BETWEEN 5 AND 8),
            sql AS (SELECT layer, avg(0.5 * v * v) AS t FROM velocities WHERE step > 5 GROUP BY layer)
            SELECT count(*), max(abs(sql.t - a.temperature) / sql.t), min(a.time_unit), max(a.window_from), max(a.window_to)
            FROM sql JOIN read_parquet('{run}/analysis-steps/temperature.parquet') a ON a.layer = sql.layer AND a.grouping = 'layer'
            """;
        using var reader = command.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal(5, reader.GetInt64(0)); // conv1..conv4 and fc
        Assert.True(reader.GetDouble(1) < 1e-9, $"largest relative difference {reader.GetDouble(1)}");
        Assert.Equal(("step", 5, 8), (reader.GetString(2), reader.GetInt32(3), reader.GetInt32(4)));
    }

    [Fact]
    public void Per_filter_temperatures_equal_a_SQL_computation_of_the_definition()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        var result = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "1:5");
        Assert.True(result.Code == 0, result.Err);
        Assert.Contains("window 1..5", result.Out);

        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        // docs/THEORY.md: v = w(e) − w(e−1); T_G = (1/n) Σ_e (1/|G|) Σ_k ½ v², over e = a+1..b, here a = 1, b = 5.
        command.CommandText = $"""
            WITH velocities AS (
              SELECT layer, unit, epoch,
                     value::DOUBLE - lag(value::DOUBLE) OVER (PARTITION BY layer, tensor, unit, "offset" ORDER BY epoch) AS v
              FROM read_parquet('{run}/snapshots/*.parquet')
              WHERE tensor = 'weight' AND epoch BETWEEN 1 AND 5),
            sql AS (SELECT layer, unit, avg(0.5 * v * v) AS t FROM velocities WHERE epoch > 1 GROUP BY layer, unit)
            SELECT count(*), max(abs(sql.t - a.temperature) / sql.t), min(a.window_from), max(a.window_to)
            FROM sql JOIN read_parquet('{run}/analysis/temperature.parquet') a
              ON a.layer = sql.layer AND a.unit = sql.unit AND a.grouping = 'unit'
            """;
        using var reader = command.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal(4 + 4 + 8 + 8 + 10, reader.GetInt64(0)); // every filter and fc row of widths 4,4,8,8
        Assert.True(reader.GetDouble(1) < 1e-9, $"largest relative difference {reader.GetDouble(1)}");
        Assert.Equal((1, 5), (reader.GetInt32(2), reader.GetInt32(3)));
    }

    [Fact]
    public void Bad_windows_layers_and_files_are_named_and_write_no_analysis()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir, epochs: 3);
        void Bad(string[] args, params string[] mentions)
        {
            var result = ThermoProcess.Run(dir.Path, ["analyze", run, .. args]);
            Assert.True(result.Code == ExitCodes.BadInput, $"exit {result.Code}: {result.Err}");
            var line = Assert.Single(result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("thermo: error:"));
            foreach (var m in mentions) Assert.Contains(m, line);
            Assert.False(Directory.Exists(Path.Combine(run, "analysis")), "no partial output");
        }
        Bad(["--window", "last:10"], "longer than the run");
        Bad(["--window", "2:9"], "outside the run");
        Bad(["--window", "soon"], "--window");
        Bad(["--window", "last:2", "--layers", "conv9"], "unknown layer 'conv9'");
        Bad(["--window", "last:2", "--groups", "neurons"], "--groups");
        var snapshot = Path.Combine(run, "snapshots", "epoch=00002.parquet");
        var bytes = File.ReadAllBytes(snapshot);
        File.WriteAllBytes(snapshot, bytes[..(bytes.Length / 2)]);
        Bad(["--window", "last:3"], "epoch=00002.parquet", "corrupt");
        File.Delete(snapshot);
        Bad(["--window", "last:3"], "lacks the snapshots of epochs 2");
        var missing = ThermoProcess.Run(dir.Path, "analyze", dir["nowhere"]);
        Assert.Equal(ExitCodes.BadInput, missing.Code);
        Assert.Contains("does not exist", missing.Err);
    }

    [Fact]
    public void An_archived_run_is_reanalysed_from_its_files_alone()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir, epochs: 12);
        // No model, no data: only the run directory is needed.
        Directory.Delete(dir["data"], true);
        Directory.Delete(Path.Combine(run, "checkpoint"), true);
        var result = ThermoProcess.Run(dir.Path, "analyze", run, "--groups", "layer", "--window", "last:6");
        Assert.True(result.Code == 0, result.Err);
        var temperature = Tables.Read(Path.Combine(run, "analysis", "temperature.parquet"), "temperature").ToDictionary(c => c.Name);
        Assert.Equal(["conv1", "conv2", "conv3", "conv4", "fc"], ((Column.StringColumn)temperature["layer"]).values);
        Assert.All(((Column.Float64Column)temperature["temperature"]).values, t => Assert.True(t > 0));
    }
}
