using System.CommandLine;
using System.Diagnostics;
using Thermo.Pipeline.Cluster;
using Thermo.Trainer;

namespace Thermo.Cli;

/// <summary>
/// <c>--scheduler local|slurm</c> and Slurm's pass-through options, shared by <c>sweep</c> and
/// <c>reproduce</c>. With <c>slurm</c>, the verb submits its trainings as an array job and a finishing
/// job that reruns the verb's own command line with <c>--scheduler local</c> (and the Slurm options
/// taken out), which finds every run trained and goes on to the analysis and the tables.
/// </summary>
public sealed class SchedulerFlags
{
    readonly Option<string> scheduler = new("--scheduler") { Description = "Where trainings run: local (child processes here) or slurm (an sbatch array job, then a dependent job for the analysis and tables)", DefaultValueFactory = _ => "local" };
    readonly Option<string> partition = new("--partition") { Description = "With --scheduler slurm: the partition (sbatch --partition)" };
    readonly Option<string> time = new("--time") { Description = "With --scheduler slurm: each job's time limit, in Slurm's spelling (e.g. 02:00:00)" };
    readonly Option<int> cpus = new("--cpus-per-task") { Description = "With --scheduler slurm: CPUs per training task, and torch's threads in it", DefaultValueFactory = _ => 1 };
    readonly Option<string[]> extra = new("--sbatch-option") { Description = "With --scheduler slurm: another #SBATCH option for both jobs, e.g. --sbatch-option=--mem=4G (repeatable)", AllowMultipleArgumentsPerToken = false };

    /// <summary>Options that mean nothing to the finishing job, each with whether it takes a value.</summary>
    static readonly (string Name, bool TakesValue)[] SlurmOnly =
        [("--scheduler", true), ("--partition", true), ("--time", true), ("--cpus-per-task", true), ("--sbatch-option", true)];

    public SchedulerFlags(Command command)
    {
        foreach (var o in new Option[] { scheduler, partition, time, cpus, extra }) command.Options.Add(o);
    }

    /// <summary>The scheduler asked for; Slurm's options without <c>--scheduler slurm</c> are an error, not ignored.</summary>
    public Scheduler Scheduler(ParseResult parse)
    {
        var chosen = parse.GetValue(scheduler) switch
        {
            "local" => Thermo.Pipeline.Cluster.Scheduler.Local,
            "slurm" => Thermo.Pipeline.Cluster.Scheduler.Slurm,
            var other => throw new ThermoException($"--scheduler: '{other}' is not local or slurm"),
        };
        if (chosen == Thermo.Pipeline.Cluster.Scheduler.Local)
            foreach (var o in new Option[] { partition, time, cpus, extra })
                if (parse.GetResult(o) is { Implicit: false }) throw new ThermoException($"{o.Name}: only with --scheduler slurm");
        return chosen;
    }

    /// <summary>Slurm's settings, once the flags are checked and <c>sbatch</c> is found, before anything is written.</summary>
    public SlurmSettings Settings(ParseResult parse)
    {
        int perTask = parse.GetValue(cpus);
        if (perTask < 1) throw new ThermoException($"--cpus-per-task: must be positive, got {perTask}");
        if (SlurmJobs.RunCommand("sbatch", ["--version"]) is null)
            throw new ThermoException("--scheduler slurm: sbatch is not installed here (it must be on PATH; submit from a login node of the cluster)");
        return new SlurmSettings(parse.GetValue(partition), parse.GetValue(time), perTask, parse.GetValue(extra) ?? []);
    }

    /// <summary>
    /// The finishing job's arguments: this process's own (<paramref name="args"/>) less every Slurm
    /// option, with <c>--scheduler local --threads C</c>, so it rebuilds the same plan — configurations
    /// included — and finds each run trained.
    /// </summary>
    public static IReadOnlyList<string> FinishArguments(IReadOnlyList<string> args, int threads)
    {
        var kept = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            var name = args[i].Split('=', 2)[0];
            var match = SlurmOnly.FirstOrDefault(o => o.Name == name);
            if (match.Name is null) { kept.Add(args[i]); continue; }
            if (match.TakesValue && !args[i].Contains('=')) i++; // the value is the next token
        }
        return [.. kept, "--scheduler", "local", "--threads", threads.ToString(System.Globalization.CultureInfo.InvariantCulture)];
    }

    /// <summary>The command that runs this <c>thermo</c> build (the dotnet host and the assembly, or the apphost), absolute.</summary>
    public static IReadOnlyList<string> ThermoCommand()
    {
        var host = Environment.ProcessPath ?? "dotnet";
        return Path.GetFileNameWithoutExtension(host) == "dotnet" ? [host, typeof(SchedulerFlags).Assembly.Location] : [host];
    }

    /// <summary>A child <c>thermo</c> process (this build) with <paramref name="args"/>.</summary>
    public static ProcessStartInfo ThermoChild(IReadOnlyList<string> args)
    {
        var command = ThermoCommand();
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in command.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>Prints what was submitted and where to look.</summary>
    public static void Report(Submission submission, string statusDirectory)
    {
        CliOutput.Result(new
        {
            directory = submission.Directory, training_job = submission.TrainingJob, finish_job = submission.FinishJob,
            tasks = submission.Tasks.Select((t, i) => new { index = i, config = t.Config, run = t.RunDirectory }),
        }, () =>
        {
            Console.WriteLine(submission.TrainingJob is { } job
                ? $"submitted {submission.Tasks.Count} training task(s) as Slurm array job {job}, and job {submission.FinishJob} after it"
                : $"every run is trained already: submitted the finishing job {submission.FinishJob} alone");
            Console.WriteLine($"  scripts, task list and logs: {submission.Directory}");
            Console.WriteLine($"  progress: thermo sweep --status {statusDirectory}");
        });
    }
}
