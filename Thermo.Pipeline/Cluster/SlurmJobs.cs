using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Thermo.Analysis;
using Thermo.Trainer;
using Thermo.Trainer.Training;

namespace Thermo.Pipeline.Cluster;

/// <summary>Where a sweep's or a reproduction's trainings run: child processes here, or Slurm jobs.</summary>
public enum Scheduler { Local, Slurm }

/// <summary>
/// What <c>sbatch</c> is told beyond the scripts' own lines: the partition, the time limit of each
/// task (Slurm's spelling, e.g. <c>02:00:00</c>), CPUs per task (torch's threads in each training),
/// and any other <c>#SBATCH</c> options, each written as given (e.g. <c>--mem=4G</c>).
/// </summary>
public sealed record SlurmSettings(string? Partition = null, string? TimeLimit = null, int CpusPerTask = 1, IReadOnlyList<string>? ExtraOptions = null);

/// <summary>One training of an array job: the configuration file a <c>thermo train --config</c> reads, and its run directory.</summary>
public sealed record TrainingTask(string Config, string RunDirectory);

/// <summary>What was submitted: the directory holding the scripts, the two job ids, and the tasks by array index.</summary>
public sealed record Submission(string Directory, string? TrainingJob, string FinishJob, IReadOnlyList<TrainingTask> Tasks);

/// <summary>One line of <c>thermo sweep --status</c>: a training task (by array index) or the finishing job.</summary>
public sealed record JobStatus(string Name, string? RunDirectory, string State, string Detail);

/// <summary>
/// Trainings as one <c>sbatch --array</c> job (task i trains line i of <c>tasks.tsv</c> with
/// <c>thermo train --config … --out … --resumable</c>, so a requeued or preempted task resumes from its
/// checkpoint), and a job that depends on it (<c>afterok</c>) running the analysis, fits or pruning and
/// tables — the same <c>thermo</c> command with <c>--scheduler local</c>, which finds every run
/// trained. Scripts, task list, job ids, logs and exit codes are kept in <c>DIR/slurm/</c>; a shared
/// file system must hold that directory, the run directories, the data and the <c>thermo</c> build.
/// </summary>
public static class SlurmJobs
{
    public const string DirectoryName = "slurm";
    public const string TasksFile = "tasks.tsv";
    public const string TrainingScript = "train.sbatch";
    public const string FinishScript = "finish.sbatch";
    public const string JobsFile = "jobs.json";
    /// <summary>Each task's (and the finishing job's) exit code, written by the script itself: the status
    /// needs no accounting database (<c>sacct</c>), which many clusters do not give their users.</summary>
    public const string ExitDirectory = "exit";
    public const string LogDirectory = "logs";
    /// <summary>The exit-code file of the finishing job (training tasks: <c>train-INDEX</c>).</summary>
    public const string FinishExitFile = "finish";

    /// <summary>The setting of submitting to Slurm at all (for messages).</summary>
    public const string Settings = "SlurmScheduler";
    /// <summary>The setting of the directory whose submission is asked about.</summary>
    public const string StatusDirectory = "Status";

    public static string Home(string dir) => Path.Combine(dir, DirectoryName);

    /// <summary>A word safe inside single quotes in bash.</summary>
    public static string Quote(string word) => "'" + word.Replace("'", "'\\''") + "'";

    static IEnumerable<string> Header(string jobName, string log, string workingDirectory, SlurmSettings s)
    {
        yield return "#!/bin/bash";
        yield return $"#SBATCH --job-name={jobName}";
        yield return $"#SBATCH --cpus-per-task={s.CpusPerTask}";
        yield return $"#SBATCH --output={log}";
        yield return "#SBATCH --open-mode=append";
        yield return $"#SBATCH --chdir={workingDirectory}";
        if (s.Partition is { } p) yield return $"#SBATCH --partition={p}";
        if (s.TimeLimit is { } t) yield return $"#SBATCH --time={t}";
        foreach (var option in s.ExtraOptions ?? []) yield return $"#SBATCH {option}";
    }

    /// <summary>The array job's script: task <c>i</c> trains line <c>i + 1</c> of the task list.</summary>
    public static string TrainingScriptText(string slurmDirectory, int tasks, IReadOnlyList<string> thermo, string workingDirectory, SlurmSettings s)
    {
        var lines = Header("thermo-train", Path.Combine(slurmDirectory, LogDirectory, "train-%A_%a.log"), workingDirectory, s).ToList();
        lines.Insert(2, $"#SBATCH --array=0-{tasks - 1}");
        lines.Add("#SBATCH --requeue");
        lines.AddRange([
            "# One training per array task: line TASK+1 of tasks.tsv is \"config<TAB>run directory\". A requeued",
            "# or preempted task finds its run again (--resumable) and resumes it from the last complete epoch.",
            "set -uo pipefail",
            "task=${SLURM_ARRAY_TASK_ID:?submit this script with sbatch --array}",
            $"IFS=$'\\t' read -r config run < <(sed -n \"$((task + 1))p\" {Quote(Path.Combine(slurmDirectory, TasksFile))})",
            // The shell's own variables, quoted for it, in the one child command line.
            $"{string.Join(' ', thermo.Select(Quote))} {string.Join(' ', RunDirectory.ChildArguments("\"$config\"", "\"$run\""))}",
            "status=$?",
            $"mkdir -p {Quote(Path.Combine(slurmDirectory, ExitDirectory))}",
            $"echo \"$status\" > {Quote(Path.Combine(slurmDirectory, ExitDirectory))}/train-\"$task\"",
            "exit \"$status\"",
        ]);
        return string.Join('\n', lines) + "\n";
    }

    /// <summary>The finishing job's script: <paramref name="finish"/> (thermo's arguments) once every training is done.</summary>
    public static string FinishScriptText(string slurmDirectory, IReadOnlyList<string> thermo, IReadOnlyList<string> finish, string workingDirectory, SlurmSettings s)
    {
        var lines = Header("thermo-finish", Path.Combine(slurmDirectory, LogDirectory, "finish-%j.log"), workingDirectory, s).ToList();
        lines.AddRange([
            "# After every training task succeeded (afterok): the same thermo command with --scheduler local,",
            "# which finds every run trained and analyses, fits or prunes, and tabulates.",
            "set -uo pipefail",
            $"{string.Join(' ', thermo.Concat(finish).Select(Quote))}",
            "status=$?",
            $"mkdir -p {Quote(Path.Combine(slurmDirectory, ExitDirectory))}",
            $"echo \"$status\" > {Quote(Path.Combine(slurmDirectory, ExitDirectory, FinishExitFile))}",
            "exit \"$status\"",
        ]);
        return string.Join('\n', lines) + "\n";
    }

    /// <summary>A process's exit code and what it printed.</summary>
    public sealed record CommandResult(int ExitCode, string Output, string Error);

    /// <summary>Runs a Slurm command (<c>sbatch</c>, <c>squeue</c>) found on PATH; null when it is not installed.</summary>
    public static CommandResult? RunCommand(string file, IReadOnlyList<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(psi)!;
            var error = process.StandardError.ReadToEndAsync();
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return new CommandResult(process.ExitCode, output, error.Result);
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }

    sealed record JobsRecord(
        [property: JsonPropertyName("submitted_utc")] DateTimeOffset SubmittedUtc,
        [property: JsonPropertyName("training_job")] string? TrainingJob,
        [property: JsonPropertyName("finish_job")] string FinishJob,
        [property: JsonPropertyName("tasks")] IReadOnlyList<TaskRecord> Tasks,
        [property: JsonPropertyName("finish_command")] IReadOnlyList<string> FinishCommand);

    sealed record TaskRecord(
        [property: JsonPropertyName("index")] int Index,
        [property: JsonPropertyName("config")] string Config,
        [property: JsonPropertyName("run")] string Run);

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>
    /// Writes the task list and both scripts into <c>DIR/slurm/</c> and submits them with
    /// <paramref name="sbatch"/> (arguments → result; <see cref="RunCommand"/> in use, a fake in tests of
    /// the scripts alone). No training task: the finishing job alone. Refuses while jobs of an earlier
    /// submission into the same directory are still queued.
    /// </summary>
    public static Submission Submit(string dir, IReadOnlyList<TrainingTask> tasks, IReadOnlyList<string> thermo, IReadOnlyList<string> finish,
        SlurmSettings settings, Func<IReadOnlyList<string>, CommandResult?> sbatch, Func<IReadOnlyList<string>, CommandResult?> squeue)
    {
        if (settings.CpusPerTask < 1) throw new SettingException(nameof(SlurmSettings.CpusPerTask), "", $"must be positive, got {settings.CpusPerTask}");
        foreach (var option in settings.ExtraOptions ?? [])
            if (!option.StartsWith('-') || option.Contains('\n'))
                throw new SettingException(nameof(SlurmSettings.ExtraOptions), "", $"'{option}' is not an sbatch option (one option per value, e.g. --mem=4G)");
        var home = Path.GetFullPath(Home(dir));
        EnsureNothingQueued(dir, squeue);
        var workingDirectory = Directory.GetCurrentDirectory();
        foreach (var path in new[] { home, workingDirectory })
            if (path.Any(c => char.IsWhiteSpace(c) || c is '#' or '%' or '"' or '\'' or '\\'))
                throw new SettingException(Settings, dir, $"{path} holds a space, '#', '%', a quote or a backslash, which an #SBATCH line cannot carry; use a plainer path");
        Directory.CreateDirectory(Path.Combine(home, LogDirectory));
        // The earlier submission's record goes first: a failure below must not leave it naming jobs whose exit codes are gone.
        File.Delete(Path.Combine(home, JobsFile));
        if (Directory.Exists(Path.Combine(home, ExitDirectory))) Directory.Delete(Path.Combine(home, ExitDirectory), recursive: true);
        var full = tasks.Select(t => new TrainingTask(Path.GetFullPath(t.Config), Path.GetFullPath(t.RunDirectory))).ToList();
        if (full.Any(t => (t.Config + t.RunDirectory).Contains('\t') || (t.Config + t.RunDirectory).Contains('\n')))
            throw new SettingException(Settings, dir, "a path holds a tab or a line break, which the task list cannot carry");
        AtomicFiles.WriteAllText(Path.Combine(home, TasksFile), string.Concat(full.Select(t => $"{t.Config}\t{t.RunDirectory}\n")));
        AtomicFiles.WriteAllText(Path.Combine(home, FinishScript), FinishScriptText(home, thermo, finish, workingDirectory, settings));
        string? trainingJob = null;
        if (full.Count > 0)
        {
            AtomicFiles.WriteAllText(Path.Combine(home, TrainingScript), TrainingScriptText(home, full.Count, thermo, workingDirectory, settings));
            trainingJob = SubmitScript(sbatch, ["--parsable", Path.Combine(home, TrainingScript)]);
        }
        else if (File.Exists(Path.Combine(home, TrainingScript))) File.Delete(Path.Combine(home, TrainingScript));
        // Cancelled rather than left pending for ever when a training task fails.
        string[] dependency = trainingJob is null ? [] : [$"--dependency=afterok:{trainingJob}", "--kill-on-invalid-dep=yes"];
        string finishJob;
        try { finishJob = SubmitScript(sbatch, ["--parsable", .. dependency, Path.Combine(home, FinishScript)]); }
        catch (ThermoException) when (trainingJob is not null)
        {
            // No array left running unrecorded, where a later submission could not see it.
            RunCommand("scancel", [trainingJob]);
            throw;
        }
        var record = new JobsRecord(DateTimeOffset.UtcNow, trainingJob, finishJob,
            full.Select((t, i) => new TaskRecord(i, t.Config, t.RunDirectory)).ToList(), [.. thermo, .. finish]);
        AtomicFiles.WriteAllText(Path.Combine(home, JobsFile), JsonSerializer.Serialize(record, Json));
        return new Submission(home, trainingJob, finishJob, full);
    }

    /// <summary>
    /// Refuses while jobs of an earlier submission into <paramref name="dir"/> are still pending or running
    /// (or when squeue cannot be read to tell); called before anything of a new submission is written.
    /// </summary>
    public static void EnsureNothingQueued(string dir, Func<IReadOnlyList<string>, CommandResult?> squeue)
    {
        var home = Path.GetFullPath(Home(dir));
        if (!File.Exists(Path.Combine(home, JobsFile))) return;
        var earlier = ReadJobs(home);
        var queued = Queue(squeue);
        if (queued is null)
        {
            // Its finishing job recorded an exit: that submission is over, whatever squeue would say.
            if (File.Exists(Path.Combine(home, ExitDirectory, FinishExitFile))) return;
            throw new SettingException(Settings, dir,
                $"squeue cannot be read to check jobs {earlier.TrainingJob ?? "-"} and {earlier.FinishJob} of an earlier submission ({Path.Combine(DirectoryName, JobsFile)}); scancel them, or remove that file");
        }
        bool Active(string job) => queued.Any(kv => JobOf(kv.Key) == job && (PendingStates.Contains(kv.Value.State) || RunningStates.Contains(kv.Value.State)));
        var still = new[] { earlier.TrainingJob, earlier.FinishJob }.Where(j => j is not null && Active(j)).ToList();
        if (still.Count > 0)
            throw new SettingException(Settings, dir, $"jobs {string.Join(", ", still)} of an earlier submission are still queued (see {{0}} {dir}); wait for them or scancel them", nameof(Status));
    }

    static string SubmitScript(Func<IReadOnlyList<string>, CommandResult?> sbatch, IReadOnlyList<string> args)
    {
        var result = sbatch(args) ?? throw new SettingException(Settings, "", "sbatch is not installed here (it must be on PATH)");
        if (result.ExitCode != 0) throw new ThermoException($"sbatch {string.Join(' ', args)} failed (exit {result.ExitCode}): {result.Error.Trim()}");
        // --parsable prints "id" or "id;cluster".
        var id = result.Output.Trim().Split(';')[0];
        if (id.Length == 0 || !id.All(char.IsAsciiDigit)) throw new ThermoException($"sbatch printed no job id: '{result.Output.Trim()}'");
        return id;
    }

    static JobsRecord ReadJobs(string home)
    {
        var path = Path.Combine(home, JobsFile);
        try { return JsonSerializer.Deserialize<JobsRecord>(File.ReadAllText(path), Json) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new ArtifactException($"{path}: not a Slurm submission record ({e.Message})", path); }
    }

    /// <summary>The job of an array task id: <c>12_3</c> → <c>12</c>.</summary>
    static string JobOf(string id) => id.Split('_')[0];

    /// <summary>
    /// Every job Slurm still knows (queued, running, or finished within its MinJobAge), array tasks one
    /// by one: id → (state, reason). Null when squeue is missing or fails.
    /// </summary>
    static Dictionary<string, (string State, string Reason)>? Queue(Func<IReadOnlyList<string>, CommandResult?> squeue)
    {
        var result = squeue(["--noheader", "--array", "--states=all", $"--user={Environment.UserName}", "--format=%i|%T|%r"]);
        if (result is null || result.ExitCode != 0) return null;
        return ParseQueue(result.Output);
    }

    /// <summary>Parses <c>squeue --format=%i|%T|%r</c> lines.</summary>
    public static Dictionary<string, (string State, string Reason)> ParseQueue(string text)
    {
        var jobs = new Dictionary<string, (string, string)>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split('|');
            if (parts.Length >= 2) jobs[parts[0]] = (parts[1], parts.Length > 2 ? parts[2] : "");
        }
        return jobs;
    }

    static readonly HashSet<string> PendingStates = ["PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"];
    static readonly HashSet<string> RunningStates = ["RUNNING", "COMPLETING"];

    /// <summary>
    /// One training task's state from what Slurm says of it (null: it no longer knows the task), the
    /// exit code its script recorded (null: none), and its run's manifest. Pure, so every combination
    /// is tested without a cluster.
    /// </summary>
    public static (string State, string Detail) ClassifyTask((string State, string Reason)? queued, int? exitCode, RunManifest? manifest)
    {
        string Progress() => manifest is null ? "not started" : $"epoch {manifest.LastCompleteEpoch} of {manifest.Config.Epochs}";
        if (queued is { } q && RunningStates.Contains(q.State)) return ("running", Progress());
        if (queued is { } p && PendingStates.Contains(p.State))
            return ("pending", (p.Reason is "" or "None" ? p.State.ToLowerInvariant() : p.Reason) + (manifest is { LastCompleteEpoch: >= 0 } ? $"; {Progress()}, will resume" : ""));
        if (exitCode is 0 && manifest is { Status: RunStatus.Complete }) return ("done", Progress());
        if (exitCode is { } code && code != 0) return ("failed", $"exit {code}; {Progress()}");
        if (queued is { } f && f.State != "COMPLETED") return ("failed", $"{f.State.ToLowerInvariant()}{(f.Reason is "" or "None" ? "" : $" ({f.Reason})")}; {Progress()}");
        if (manifest is { Status: RunStatus.Complete }) return ("done", Progress());
        return ("failed", $"gone from the queue with no exit code recorded (cancelled or killed); {Progress()}");
    }

    /// <summary>The finishing job's state, from Slurm and its recorded exit code.</summary>
    public static (string State, string Detail) ClassifyFinish((string State, string Reason)? queued, int? exitCode)
    {
        if (queued is { } q && RunningStates.Contains(q.State)) return ("running", "analysing and tabulating");
        if (queued is { } p && PendingStates.Contains(p.State))
            return p.Reason == "DependencyNeverSatisfied" ? ("failed", "will not run: a training task failed") : ("pending", p.Reason is "" or "None" ? "queued" : p.Reason);
        if (exitCode is 0) return ("done", "tables written");
        if (exitCode is { } code) return ("failed", $"exit {code} (see its log)");
        if (queued is { } f && f.State != "COMPLETED") return ("failed", f.State.ToLowerInvariant());
        return ("failed", "gone from the queue with no exit code recorded (cancelled, or a training task failed)");
    }

    /// <summary>Every task's and the finishing job's state for a directory submitted with <see cref="Submit"/>.</summary>
    public static (IReadOnlyList<JobStatus> Jobs, bool QueueRead, string? TrainingJob, string FinishJob) Status(string dir, Func<IReadOnlyList<string>, CommandResult?> squeue)
    {
        var home = Home(dir);
        if (!File.Exists(Path.Combine(home, JobsFile)))
            throw new NotWrittenException(dir, $"holds no Slurm submission (no {Path.Combine(DirectoryName, JobsFile)})", Settings, StatusDirectory);
        var record = ReadJobs(home);
        var queue = Queue(squeue);
        int? ExitCode(string name)
        {
            var path = Path.Combine(home, ExitDirectory, name);
            return File.Exists(path) && int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var c) ? c : null;
        }
        (string, string)? Queued(string id) => queue is not null && queue.TryGetValue(id, out var s) ? s : null;
        var jobs = new List<JobStatus>();
        foreach (var t in record.Tasks)
        {
            // A pending array shows as one line "12_[0-3]" until its tasks start: look for the task, then for the array.
            var queued = Queued($"{record.TrainingJob}_{t.Index}") ?? queue?.Where(kv => kv.Key.StartsWith($"{record.TrainingJob}_[", StringComparison.Ordinal) && ArrayRangeHolds(kv.Key, t.Index)).Select(kv => ((string, string)?)kv.Value).FirstOrDefault();
            // Read once: the classification and the rewrite below must see the same file.
            var exit = ExitCode($"train-{t.Index}");
            var (state, detail) = ClassifyTask(queued, exit, RunManifest.TryLoadQuietly(t.Run));
            // Without squeue a task with no exit code may still be queued or running: not "failed".
            if (queue is null && state == "failed" && exit is null) (state, detail) = ("unknown", "squeue unreadable; " + detail[(detail.IndexOf(';') + 2)..]);
            jobs.Add(new JobStatus($"train[{t.Index}]", t.Run, state, detail));
        }
        var finishExit = ExitCode(FinishExitFile);
        var (finishState, finishDetail) = ClassifyFinish(Queued(record.FinishJob), finishExit);
        if (queue is null && finishExit is null) (finishState, finishDetail) = ("unknown", "squeue unreadable, and no exit code recorded yet");
        jobs.Add(new JobStatus("finish", null, finishState, finishDetail));
        return (jobs, queue is not null, record.TrainingJob, record.FinishJob);
    }

    /// <summary>Whether a pending array's id (<c>12_[0-3,5%2]</c>) covers task <paramref name="index"/>.</summary>
    public static bool ArrayRangeHolds(string id, int index)
    {
        int open = id.IndexOf('['), close = id.IndexOf(']');
        if (open < 0 || close < open) return false;
        foreach (var part in id[(open + 1)..close].Split('%')[0].Split(','))
        {
            var bounds = part.Split('-');
            if (bounds.Length == 1 && int.TryParse(bounds[0], out var single) && single == index) return true;
            if (bounds.Length == 2 && int.TryParse(bounds[0], out var from) && int.TryParse(bounds[1], out var to) && from <= index && index <= to) return true;
        }
        return false;
    }
}
