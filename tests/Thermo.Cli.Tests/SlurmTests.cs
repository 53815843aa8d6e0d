using Thermo.Trainer.Tests;
using System.Diagnostics;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Run;
using Thermo.Pipeline.Cluster;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Tests;

/// <summary>
/// The Slurm scheduler's parts that need no cluster: the scripts (run by bash with Slurm's variables
/// set by hand), the submission's bookkeeping (sbatch and squeue replaced by recorders), the states
/// <c>--status</c> reports, the finishing job's arguments, the flags, and <c>train --resumable</c>.
/// The whole path through a real Slurm is <see cref="ClusterTests"/>.
/// </summary>
public class SlurmTests
{
    static SlurmJobs.CommandResult Ok(string output) => new(0, output, "");

    /// <summary>sbatch replaced by a recorder handing out job ids 101, 102, ….</summary>
    sealed class FakeSbatch
    {
        public readonly List<IReadOnlyList<string>> Calls = [];
        public SlurmJobs.CommandResult? Run(IReadOnlyList<string> args) { Calls.Add(args); return Ok($"{100 + Calls.Count}\n"); }
    }

    [Fact]
    public void A_submission_writes_the_task_list_both_scripts_and_a_job_that_waits_for_every_task()
    {
        using var dir = new TempDir();
        // Paths with a space and a quote: the scripts must carry them intact.
        var tasks = new[] { new TrainingTask(dir["cfg a.json"], dir["runs/it's a"]), new TrainingTask(dir["cfg b.json"], dir["runs/b"]) };
        var sbatch = new FakeSbatch();
        var settings = new SlurmSettings("short", "00:30:00", 2, ["--mem=2G", "--qos=low"]);
        var submission = SlurmJobs.Submit(dir["sweep"], tasks, ["/bin/echo", "thermo"], ["sweep", "--from", "a b", "--scheduler", "local"], settings, sbatch.Run, _ => Ok(""));

        Assert.Equal(("101", "102"), (submission.TrainingJob, submission.FinishJob));
        var home = dir["sweep/slurm"];
        Assert.Equal(tasks.Select(t => $"{t.Config}\t{t.RunDirectory}"), File.ReadAllLines(Path.Combine(home, SlurmJobs.TasksFile)));
        Assert.Equal(["--parsable", Path.Combine(home, SlurmJobs.TrainingScript)], sbatch.Calls[0]);
        Assert.Equal(["--parsable", "--dependency=afterok:101", "--kill-on-invalid-dep=yes", Path.Combine(home, SlurmJobs.FinishScript)], sbatch.Calls[1]);
        var training = File.ReadAllText(Path.Combine(home, SlurmJobs.TrainingScript));
        foreach (var line in new[] { "#SBATCH --array=0-1", "#SBATCH --cpus-per-task=2", "#SBATCH --partition=short", "#SBATCH --time=00:30:00", "#SBATCH --mem=2G", "#SBATCH --qos=low", "#SBATCH --requeue" })
            Assert.Contains(line + "\n", training);
        var jobs = JsonDocument.Parse(File.ReadAllText(Path.Combine(home, SlurmJobs.JobsFile))).RootElement;
        Assert.Equal("101", jobs.GetProperty("training_job").GetString());
        Assert.Equal(tasks[1].RunDirectory, jobs.GetProperty("tasks")[1].GetProperty("run").GetString());

        // Each array task trains its own line: run the script as Slurm would, with "thermo" an echo.
        for (int task = 0; task < tasks.Length; task++)
        {
            var (code, output) = Bash(Path.Combine(home, SlurmJobs.TrainingScript), ("SLURM_ARRAY_TASK_ID", task.ToString()));
            Assert.Equal(0, code);
            Assert.Equal($"thermo train --config {tasks[task].Config} --out {tasks[task].RunDirectory} --resumable --quiet", output.Trim());
            Assert.Equal("0", File.ReadAllText(Path.Combine(home, SlurmJobs.ExitDirectory, $"train-{task}")).Trim());
        }
        var finish = Bash(Path.Combine(home, SlurmJobs.FinishScript));
        Assert.Equal((0, "thermo sweep --from a b --scheduler local"), (finish.Code, finish.Output.Trim()));
        Assert.Equal("0", File.ReadAllText(Path.Combine(home, SlurmJobs.ExitDirectory, SlurmJobs.FinishExitFile)).Trim());

        // While jobs of this submission are queued, a second one into the same directory is refused.
        var error = Assert.Throws<SettingException>(() => SlurmJobs.Submit(dir["sweep"], tasks, ["thermo"], ["sweep"], settings, sbatch.Run, _ => Ok("101_1|RUNNING|None\n")));
        Assert.Contains("101", error.Detail);
        Assert.Equal($"jobs 101 of an earlier submission are still queued (see Status {dir["sweep"]}); wait for them or scancel them", error.Detail);
        Assert.Equal([nameof(SlurmJobs.Status)], error.Related);
        Assert.Contains($"still queued (see thermo sweep --status {dir["sweep"]})", SettingFlags.Message(error));
        Assert.Equal(2, sbatch.Calls.Count);
        // Once they are gone it goes ahead, and with nothing to train the finishing job runs alone.
        var alone = SlurmJobs.Submit(dir["sweep"], [], ["thermo"], ["sweep"], settings, sbatch.Run, _ => Ok("101_0|COMPLETED|None\n102|COMPLETED|None\n77|RUNNING|None\n"));
        Assert.Equal((null, "103"), (alone.TrainingJob, alone.FinishJob));
        Assert.Equal(["--parsable", Path.Combine(home, SlurmJobs.FinishScript)], sbatch.Calls[2]);
        Assert.False(File.Exists(Path.Combine(home, SlurmJobs.TrainingScript)));
        Assert.False(Directory.Exists(Path.Combine(home, SlurmJobs.ExitDirectory)));
    }

    [Fact]
    public void Bad_slurm_settings_and_a_failing_sbatch_are_named()
    {
        using var dir = new TempDir();
        var task = new[] { new TrainingTask(dir["c.json"], dir["r"]) };
        Assert.Throws<SettingException>(() => SlurmJobs.Submit(dir["s"], task, ["thermo"], [], new SlurmSettings(ExtraOptions: ["mem=2G"]), new FakeSbatch().Run, _ => null));
        Assert.Throws<SettingException>(() => SlurmJobs.Submit(dir["s"], task, ["thermo"], [], new SlurmSettings(CpusPerTask: 0), new FakeSbatch().Run, _ => null));
        var refused = Assert.Throws<Thermo.Trainer.ThermoException>(() => SlurmJobs.Submit(dir["s"], task, ["thermo"], [], new SlurmSettings(), _ => new(1, "", "sbatch: error: invalid partition specified: gpu"), _ => null));
        Assert.Contains("invalid partition", refused.Message);
        var missing = Assert.Throws<SettingException>(() => SlurmJobs.Submit(dir["s"], task, ["thermo"], [], new SlurmSettings(), _ => null, _ => null));
        Assert.Contains("sbatch is not installed", missing.Message);
        // #SBATCH lines split on spaces: such a directory is refused before anything is written.
        var spaced = Assert.Throws<SettingException>(() => SlurmJobs.Submit(dir["my sweep"], task, ["thermo"], [], new SlurmSettings(), new FakeSbatch().Run, _ => null));
        Assert.Contains("#SBATCH", spaced.Detail);
        Assert.False(Directory.Exists(dir["my sweep"]));
        // With an earlier submission on record, an unreadable squeue is no licence to submit again.
        var earlier = new FakeSbatch();
        SlurmJobs.Submit(dir["again"], task, ["thermo"], [], new SlurmSettings(), earlier.Run, _ => Ok(""));
        Assert.Contains("squeue cannot be read", Assert.Throws<SettingException>(() => SlurmJobs.Submit(dir["again"], task, ["thermo"], [], new SlurmSettings(), earlier.Run, _ => null)).Detail);
        Assert.Equal("unknown", SlurmJobs.Status(dir["again"], _ => null).Jobs[0].State);
    }

    static RunManifest Manifest(RunStatus status, int last, int epochs) => new()
    {
        RunId = "r", Config = new TrainConfig { Epochs = epochs }, Dataset = new DatasetInfo("mnist", "", "", 1, 1, 1, 28, 28, 10),
        Status = status, LastCompleteEpoch = last, Layers = [], Packages = [],
    };

    [Fact]
    public void Task_states_come_from_the_queue_the_recorded_exit_code_and_the_run()
    {
        var complete = Manifest(RunStatus.Complete, 4, 4);
        var partial = Manifest(RunStatus.Running, 2, 4);
        Assert.Equal(("running", "epoch 2 of 4"), SlurmJobs.ClassifyTask(("RUNNING", "None"), null, partial));
        Assert.Equal(("pending", "Resources"), SlurmJobs.ClassifyTask(("PENDING", "Resources"), null, null));
        // A preempted task back in the queue resumes from its checkpoint.
        Assert.Equal(("pending", "requeued; epoch 2 of 4, will resume"), SlurmJobs.ClassifyTask(("REQUEUED", "None"), null, partial));
        Assert.Equal(("done", "epoch 4 of 4"), SlurmJobs.ClassifyTask(null, 0, complete));
        Assert.Equal(("done", "epoch 4 of 4"), SlurmJobs.ClassifyTask(("COMPLETED", "None"), 0, complete));
        Assert.Equal(("failed", "exit 2; epoch 2 of 4"), SlurmJobs.ClassifyTask(null, 2, partial));
        Assert.Equal(("failed", "timeout (TimeLimit); epoch 2 of 4"), SlurmJobs.ClassifyTask(("TIMEOUT", "TimeLimit"), null, partial));
        Assert.StartsWith("gone from the queue", SlurmJobs.ClassifyTask(null, null, partial).Detail);
        Assert.Equal("failed", SlurmJobs.ClassifyTask(null, null, null).State);

        Assert.Equal(("pending", "Dependency"), SlurmJobs.ClassifyFinish(("PENDING", "Dependency"), null));
        Assert.Equal(("failed", "will not run: a training task failed"), SlurmJobs.ClassifyFinish(("PENDING", "DependencyNeverSatisfied"), null));
        Assert.Equal("running", SlurmJobs.ClassifyFinish(("RUNNING", "None"), null).State);
        Assert.Equal(("done", "tables written"), SlurmJobs.ClassifyFinish(null, 0));
        Assert.Equal(("failed", "exit 3 (see its log)"), SlurmJobs.ClassifyFinish(null, 3));
        Assert.Equal("failed", SlurmJobs.ClassifyFinish(("CANCELLED", "None"), null).State);

        // squeue's own spellings: a pending array is one line until its tasks start.
        var queue = SlurmJobs.ParseQueue("12_[2-3,5%1]|PENDING|Resources\n12_0|RUNNING|None\n 13|PENDING|Dependency \n");
        Assert.Equal(("RUNNING", "None"), queue["12_0"]);
        Assert.Equal(("PENDING", "Dependency"), queue["13"]);
        Assert.Equal([false, false, true, true, false, true], Enumerable.Range(0, 6).Select(i => SlurmJobs.ArrayRangeHolds("12_[2-3,5%1]", i)));
        Assert.False(SlurmJobs.ArrayRangeHolds("12_4", 4));
    }

    [Fact]
    public void The_finishing_job_reruns_the_command_without_the_slurm_options()
    {
        string[] given = ["sweep", "--from", "run", "--scheduler", "slurm", "--partition=short", "--time", "01:00:00", "--cpus-per-task", "2",
            "--sbatch-option=--mem=4G", "--sbatch-option", "--qos=low", "--lr", "1e-3", "--json"];
        Assert.Equal(["sweep", "--from", "run", "--lr", "1e-3", "--json", "--scheduler", "local", "--threads", "2"], SchedulerFlags.FinishArguments(given, 2));
    }

    [Fact]
    public void Scheduler_flags_are_checked_before_anything_is_written()
    {
        using var dir = new TempDir();
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["sweep", "--from", dir["x"], "--lr", "1e-3", "--scheduler", "pbs"], "--scheduler: 'pbs' is not local or slurm"),
            (["sweep", "--from", dir["x"], "--lr", "1e-3", "--partition", "short"], "--partition: only with --scheduler slurm"),
            // An option's value that starts with '-' is the option's, not an unknown option.
            (["sweep", "--from", dir["x"], "--lr", "1e-3", "--sbatch-option=--mem=4G"], "--sbatch-option: only with --scheduler slurm"),
            (["sweep", "--from", dir["x"], "--lr", "1e-3", "--sbatch-option", "--qos=low"], "--sbatch-option: only with --scheduler slurm"),
            (["sweep", "--lr", "1e-3"], "--from: required"),
            (["sweep", "--status", dir.Path], "--status: holds no Slurm submission"),
            (["sweep", "--status", dir.Path, "--lr", "1e-3"], "--status: takes no other option"),
            (["sweep", "--from", dir["x"], "--lr", "1e-3", "--scheduler", "slurm", "--threads", "2"], "--threads: with --scheduler slurm"),
            (["reproduce", "pruning-paper", "--scheduler", "slurm", "--threads", "2", "--out", dir["r"]], "--threads: with --scheduler slurm"),
            (["reproduce", "pruning-paper", "--scheduler", "slurm", "--cpus-per-task", "0", "--out", dir["r"]], "--cpus-per-task: must be positive"),
        })
        {
            var result = ThermoProcess.Run(dir.Path, args);
            Assert.True(result.Code == 2, $"{string.Join(' ', args)}: exit {result.Code}: {result.Err}");
            Assert.Contains(expected, result.Err);
        }
        Assert.False(Directory.Exists(dir["r"]));

        // Without sbatch on PATH: named before anything is written.
        Directory.CreateDirectory(dir["empty"]);
        var psi = ThermoProcess.StartInfo(dir.Path, "reproduce", "pruning-paper", "--scheduler", "slurm", "--out", dir["r"]);
        psi.Environment["PATH"] = dir["empty"];
        using var p = Process.Start(psi)!;
        _ = p.StandardOutput.ReadToEndAsync();
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(2, p.ExitCode);
        Assert.Contains("sbatch is not installed", err);
        Assert.False(Directory.Exists(dir["r"]));
    }

    [Fact]
    public void A_resumable_training_finishes_its_run_whatever_state_it_finds()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], train: 1280, test: 64);
        var config = dir["config.json"];
        var tiny = TinyData.QuickConfig(data, epochs: 5) with { BatchSize = 32 };
        File.WriteAllText(config, JsonSerializer.Serialize(tiny, RunManifest.Json));
        string[] Args(string run) => ["train", "--config", config, "--out", run, "--resumable"];

        var straight = ThermoProcess.Run(dir.Path, Args(dir["straight"]));
        Assert.True(straight.Code == 0, straight.Err);

        // A task killed after its second epoch, then run again as a requeued task would be.
        ThermoProcess.KillAfterEpoch(dir.Path, dir["requeued"], 2, TimeSpan.Zero, Args(dir["requeued"]));
        Assert.Equal(RunStatus.Running, RunManifest.TryLoad(dir["requeued"])!.Status);
        var again = ThermoProcess.Run(dir.Path, Args(dir["requeued"]));
        Assert.True(again.Code == 0, again.Err);
        Assert.Contains("resuming", again.Err);
        var expected = SnapshotSeries.ReadRun(dir["straight"]).ToArray();
        var actual = SnapshotSeries.ReadRun(dir["requeued"]).ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int e = 0; e < expected.Length; e++)
            for (int t = 0; t < expected[e].Tensors.Length; t++)
                Assert.Equal(expected[e].Tensors[t].Values, actual[e].Tensors[t].Values);

        // A complete run is left as it is.
        var stamp = File.GetLastWriteTimeUtc(RunManifest.PathIn(dir["straight"]));
        var done = ThermoProcess.Run(dir.Path, Args(dir["straight"]));
        Assert.True(done.Code == 0, done.Err);
        Assert.Contains("complete already", done.Err);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(RunManifest.PathIn(dir["straight"])));

        // A run of another configuration is never continued or counted as done.
        File.WriteAllText(config, JsonSerializer.Serialize(tiny with { Seed = 2 }, RunManifest.Json));
        var other = ThermoProcess.Run(dir.Path, Args(dir["straight"]));
        Assert.Equal(2, other.Code);
        Assert.Contains("holds a run of another configuration", other.Err);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(RunManifest.PathIn(dir["straight"])));
    }

    [Fact]
    public void A_resumable_task_extends_a_shorter_run_and_knows_a_graph_networks_default_graph()
    {
        using var dir = new TempDir();
        var data = TinyData.WriteMnistLike(dir["data"], train: 64, test: 32);
        var config = dir["config.json"];
        // A gcn configuration without --graph: the run records slic, and a rerun must still match it.
        var gcn = new TrainConfig { Model = "gcn", DataDir = data, Epochs = 1, BatchSize = 32, Threads = 1 };
        File.WriteAllText(config, JsonSerializer.Serialize(gcn, RunManifest.Json));
        string[] args = ["train", "--config", config, "--out", dir["run"], "--resumable"];
        var first = ThermoProcess.Run(dir.Path, args);
        Assert.True(first.Code == 0, first.Err);
        var again = ThermoProcess.Run(dir.Path, args);
        Assert.True(again.Code == 0, again.Err);
        Assert.Contains("complete already", again.Err);

        // The same configuration with more epochs extends the run, as reproduce's local path does.
        File.WriteAllText(config, JsonSerializer.Serialize(gcn with { Epochs = 2 }, RunManifest.Json));
        var extended = ThermoProcess.Run(dir.Path, args);
        Assert.True(extended.Code == 0, extended.Err);
        Assert.Equal((2, RunStatus.Complete), (RunManifest.TryLoad(dir["run"])!.LastCompleteEpoch, RunManifest.TryLoad(dir["run"])!.Status));
        // Fewer epochs than the run holds: refused.
        File.WriteAllText(config, JsonSerializer.Serialize(gcn, RunManifest.Json));
        var shorter = ThermoProcess.Run(dir.Path, args);
        Assert.Equal(2, shorter.Code);
        Assert.Contains("more than the configuration's 1", shorter.Err);
    }

    static (int Code, string Output) Bash(string script, params (string Name, string Value)[] environment)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        foreach (var (name, value) in environment) psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }
}
