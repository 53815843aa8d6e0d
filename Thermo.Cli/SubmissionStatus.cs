using Thermo.Pipeline.Cluster;

namespace Thermo.Cli;

/// <summary><c>thermo sweep --status DIR</c>: what a Slurm submission into DIR (a sweep's or a reproduction's) has done.</summary>
public static class SubmissionStatus
{
    public static int Print(string dir)
    {
        var (jobs, queueRead, trainingJob, finishJob) = SlurmJobs.Status(dir, a => SlurmJobs.RunCommand("squeue", a));
        var counts = jobs.GroupBy(j => j.State).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} {g.Key}").ToList();
        CliOutput.Result(new
        {
            directory = dir, training_job = trainingJob, finish_job = finishJob, queue_read = queueRead,
            jobs = jobs.Select(j => new { name = j.Name, run = j.RunDirectory, state = j.State, detail = j.Detail }),
        }, () =>
        {
            Console.WriteLine($"Slurm jobs {trainingJob ?? "(no training)"} (training) and {finishJob} (finish) of {dir}: {string.Join(", ", counts)}");
            if (!queueRead) Console.WriteLine("  squeue could not be read here: states come from the runs and the recorded exit codes alone");
            Console.WriteLine($"  {"job",-10} {"state",-8} {"detail",-50} run");
            foreach (var j in jobs) Console.WriteLine($"  {j.Name,-10} {j.State,-8} {j.Detail,-50} {j.RunDirectory}");
        });
        return ExitCodes.Ok;
    }
}
