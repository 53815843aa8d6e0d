using Thermo.Trainer.Tests;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Pipeline.Cluster;
using Thermo.Pipeline.Pruning;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary>
/// A test that needs a running Slurm: `dotnet fsi build.fsx cluster-test` starts a single-node
/// cluster, sets <c>SLURM_CONF</c> and <c>THERMO_SLURM_CLUSTER</c>, and runs these; anywhere else they
/// are skipped, saying why.
/// </summary>
public sealed class ClusterFactAttribute : FactAttribute
{
    public ClusterFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("THERMO_SLURM_CLUSTER") is not { Length: > 0 })
            Skip = "needs a running Slurm: dotnet fsi build.fsx cluster-test starts one and runs this";
    }
}

/// <summary>
/// Sweeps and reproductions through a real Slurm (sbatch, array jobs, afterok, squeue), each compared
/// with the same command under <c>--scheduler local</c>: the same seeds and thread counts must give the
/// same numbers, bit for bit.
/// </summary>
[Trait("Category", "Cluster")]
public class ClusterTests
{
    static readonly TimeSpan Patience = TimeSpan.FromMinutes(8);

    /// <summary>Polls the submission until its finishing job has ended; returns every job's state.</summary>
    static IReadOnlyList<JobStatus> WaitFor(string dir)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var (jobs, queueRead, _, _) = SlurmJobs.Status(dir, a => SlurmJobs.RunCommand("squeue", a));
            Assert.True(queueRead, "squeue could not be read");
            if (jobs[^1].State is not ("pending" or "running")) return jobs;
            Assert.True(DateTime.UtcNow < deadline, $"{dir}: still {string.Join(", ", jobs.Select(j => $"{j.Name} {j.State} ({j.Detail})"))} after {Patience}");
            Thread.Sleep(500);
        }
    }

    static string Log(string dir) => string.Join("\n", Directory.EnumerateFiles(Path.Combine(dir, SlurmJobs.DirectoryName, SlurmJobs.LogDirectory)).Select(f => $"{Path.GetFileName(f)}:\n{File.ReadAllText(f)}"));

    static void AssertAllDone(string dir, IReadOnlyList<JobStatus> jobs) =>
        Assert.True(jobs.All(j => j.State == "done"), string.Join("\n", jobs.Select(j => $"{j.Name} {j.State} {j.Detail}")) + "\n" + Log(dir));

    [ClusterFact]
    public void A_sweep_through_sbatch_equals_the_same_sweep_run_locally()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 512, 128);
        using (var run = TrainingRun.Start(TinyData.QuickConfig(data, 2), dir["run"], dir.Path, new SilentProgress())) run.Run();
        string[] grid = ["sweep", "--from", dir["run"], "--lr", "1e-3,2e-3", "--batch-size", "32,64", "--epochs", "3", "--window", "last:2"];

        var submitted = ThermoProcess.Run(dir.Path, [.. grid, "--out", dir["slurm"], "--scheduler", "slurm", "--cpus-per-task", "1", "--json"]);
        Assert.True(submitted.Code == 0, submitted.Err);
        var submission = JsonDocument.Parse(submitted.Out).RootElement;
        Assert.Equal(4, submission.GetProperty("tasks").GetArrayLength());
        var local = ThermoProcess.Run(dir.Path, [.. grid, "--out", dir["local"], "--threads", "1"]);
        Assert.True(local.Code == 0, local.Err);
        AssertAllDone(dir["slurm"], WaitFor(dir["slurm"]));

        // The same grid points, trained as array tasks and as child processes, give the same temperatures.
        static Dictionary<(string, double, string), double> Temperatures(string sweep)
        {
            var t = Table.Read(Path.Combine(sweep, "sweep.parquet"), "sweep");
            var parameter = Table.GetStrings(t, "parameter", sweep);
            var value = Table.GetDoubles(t, "value", sweep);
            var layer = Table.GetStrings(t, "layer", sweep);
            var temperature = Table.GetDoubles(t, "temperature", sweep);
            return Enumerable.Range(0, parameter.Length).ToDictionary(i => (parameter[i], value[i], layer[i]), i => temperature[i]);
        }
        var expected = Temperatures(dir["local"]);
        Assert.Equal(20, expected.Count);
        Assert.Equal(expected, Temperatures(dir["slurm"]));
        Assert.True(File.Exists(Path.Combine(dir["slurm"], "fits.parquet")));

        // The status verb reads the same from the outside.
        var status = ThermoProcess.Run(dir.Path, "sweep", "--status", dir["slurm"], "--json");
        Assert.True(status.Code == 0, status.Err);
        Assert.All(JsonDocument.Parse(status.Out).RootElement.GetProperty("jobs").EnumerateArray(), j => Assert.Equal("done", j.GetProperty("state").GetString()));

        // Submitted again, every point is found trained: the finishing job runs alone.
        var again = ThermoProcess.Run(dir.Path, [.. grid, "--out", dir["slurm"], "--scheduler", "slurm", "--json"]);
        Assert.True(again.Code == 0, again.Err);
        Assert.Equal(JsonValueKind.Null, JsonDocument.Parse(again.Out).RootElement.GetProperty("training_job").ValueKind);
        AssertAllDone(dir["slurm"], WaitFor(dir["slurm"]));
    }

    [ClusterFact]
    public void A_reproduction_through_sbatch_equals_the_same_reproduction_run_locally()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], 512, 128);
        string[] protocol = ["reproduce", "pruning-paper", "--data-dir", data, "--runs", "2", "--epochs", "3", "--window", "last:2", "--curves", "none", "--draws", "2"];

        var submitted = ThermoProcess.Run(dir.Path, [.. protocol, "--out", dir["slurm"], "--ledger", dir["ledger"], "--scheduler", "slurm"]);
        Assert.True(submitted.Code == 0, submitted.Err);
        var local = ThermoProcess.Run(dir.Path, [.. protocol, "--out", dir["local"], "--threads", "1"]);
        Assert.True(local.Code == 0, local.Err);
        AssertAllDone(dir["slurm"], WaitFor(dir["slurm"]));

        // Every evaluation of every pruned model is the same; the finishing job kept both runs in the ledger.
        static List<string> Rows(string results) => PruningFiles.ReadResults(results)
            .Select(r => $"{Path.GetFileName(r.Run)} {r.Layer} {r.Criterion} {r.Draw} {r.Experiment} {string.Join(",", r.Zeroed)} {r.Accuracy:R} {r.Loss:R}").Order().ToList();
        Assert.Equal(Rows(Path.Combine(dir["local"], "tables", "l2=0.001", "results.parquet")), Rows(Path.Combine(dir["ledger"], "tables", "l2=0.001", "results.parquet")));
        Assert.Equal(2, Directory.EnumerateDirectories(Path.Combine(dir["ledger"], "l2=0.001"), "seed-*").Count());
    }

    [ClusterFact]
    public void A_failing_task_is_reported_failed_and_its_finishing_job_never_runs()
    {
        using var dir = new TempDir();
        // A configuration file that does not exist: thermo train exits 2 in the array task.
        var tasks = new[] { new TrainingTask(dir["missing.json"], dir["run"]) };
        var submission = SlurmJobs.Submit(dir["sweep"], tasks, ["dotnet", ThermoProcess.Executable], ["--version"], new SlurmSettings(),
            a => SlurmJobs.RunCommand("sbatch", a), a => SlurmJobs.RunCommand("squeue", a));
        Assert.NotNull(submission.TrainingJob);
        var jobs = WaitFor(dir["sweep"]);
        Assert.Equal(("failed", "exit 2; not started"), (jobs[0].State, jobs[0].Detail));
        Assert.Equal("failed", jobs[1].State);
        Assert.False(File.Exists(Path.Combine(dir["sweep"], SlurmJobs.DirectoryName, SlurmJobs.ExitDirectory, SlurmJobs.FinishExitFile)));
        Assert.Contains("--config", Log(dir["sweep"]));
    }
}
