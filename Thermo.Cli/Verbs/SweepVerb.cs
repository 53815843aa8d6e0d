using Thermo.Pipeline.Cluster;
using Thermo.Pipeline.Protocols;
using Thermo.Trainer;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Thermo.Analysis.Physics;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo sweep</c>: temperature against hyper-parameters (docs/THEORY.md, "Temperature vs hyper-parameters").
/// From a run's final (equilibrium) model, one ordinary run per grid value — each learning rate at the
/// run's batch size, each batch size at the run's learning rate — trained as a child <c>thermo train</c>
/// process (so several can run at once, and a killed sweep resumes), analysed over its last epochs,
/// and every layer's temperature fitted as T = c·x^β for x = η and x = 1/B.
/// </summary>
public static class SweepVerb
{
    public static Command Build()
    {
        var from = new Option<string>("--from") { Description = "The equilibrium run to continue from (its last snapshot)" };
        var lrs = new Option<string>("--lr") { Description = "Learning rates, comma-separated (batch size: the run's)" };
        var batches = new Option<string>("--batch-size") { Description = "Batch sizes, comma-separated (learning rate: the run's)" };
        var epochs = new Option<int>("--epochs") { Description = "Epochs trained at each grid point", DefaultValueFactory = _ => 10 };
        var jobs = new Option<int>("--jobs") { Description = "Grid points trained at once, as separate processes", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out") { Description = "Sweep directory (default: sweep/ inside the --from run)" };
        var threads = new Option<int>("--threads") { Description = "Torch's threads in each grid point's training (0: the run's own, or the cores shared among --jobs)", DefaultValueFactory = _ => 0 };
        var steps = new Option<int>("--steps") { Description = "Per-step temperatures (the thermodynamic paper's protocol): snapshot every optimiser step of each point's last K epochs and analyse them with Δt = one step (0: per epoch, over --window)", DefaultValueFactory = _ => 0 };
        var status = new Option<string>("--status") { Description = "Say what a Slurm submission into this directory (a sweep's or a reproduction's) has done: each task done, running, pending or failed" };
        var command = new Command("sweep", "Temperature vs learning rate and 1/batch size: continue an equilibrium run at each grid value, analyse, fit T = c·x^β per layer")
        {
            from, lrs, batches, epochs, jobs, output, threads, steps, status,
        };
        var window = new WindowFlag(command, "Temperatures over this window of each point, last:N (default: the last half of --epochs)", null, "--equilibrium", legacyIsCount: true);
        var scheduling = new SchedulerFlags(command);
        command.SetAction(parse =>
        {
            if (parse.GetValue(status) is { } submitted)
            {
                var others = command.Options.Where(o => o != status && parse.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
                if (others.Count > 0) throw new ThermoException($"--status: takes no other option ({string.Join(", ", others)} given)");
                return SubmissionStatus.Print(submitted);
            }
            var run = parse.GetValue(from) ?? throw new ThermoException("--from: required (the equilibrium run to continue), unless --status is given");
            var lrValues = ParseValues("--lr", parse.GetValue(lrs));
            var batchValues = ParseValues("--batch-size", parse.GetValue(batches));
            if (parse.GetValue(threads) < 0) throw new ThermoException($"--threads: must be 0 or more, got {parse.GetValue(threads)}");
            var plan = new Sweep.Plan(run, lrValues, batchValues, parse.GetValue(epochs), window.LastEpochs(parse) ?? 0, parse.GetValue(jobs), parse.GetValue(output), parse.GetValue(threads), parse.GetValue(steps));
            if (plan.StepEpochs > 0 && window.Given(parse)) throw new ThermoException("--window: with --steps, every step snapshot is the window");
            if (scheduling.Scheduler(parse) == Scheduler.Slurm)
            {
                if (parse.GetResult(threads) is { Implicit: false }) throw new ThermoException("--threads: with --scheduler slurm, --cpus-per-task sets each training's threads");
                if (parse.GetResult(jobs) is { Implicit: false }) throw new ThermoException("--jobs: with --scheduler slurm, Slurm decides how many tasks run at once");
                var slurm = scheduling.Settings(parse);
                var submission = Sweep.Submit(plan, SchedulerFlags.ThermoCommand(), SchedulerFlags.FinishArguments(Program.Arguments, slurm.CpusPerTask), slurm,
                    a => SlurmJobs.RunCommand("sbatch", a), a => SlurmJobs.RunCommand("squeue", a));
                SchedulerFlags.Report(submission, plan.Out ?? Path.Combine(run, "sweep"));
                return ExitCodes.Ok;
            }
            var (dir, last, fits) = Sweep.Run(plan, SchedulerFlags.ThermoChild, new ConsoleProgress());
            CliOutput.Result(new { directory = dir, window = $"last:{last}", time_unit = TimeUnits.Name(plan.StepEpochs > 0 ? TimeUnit.Step : TimeUnit.Epoch),
                fits = fits.Select(f => new { parameter = f.Parameter, layer = f.Layer, points = f.Points, beta = f.Beta, c = f.C, r_squared = f.R2,
                    affine_intercept = f.AffineIntercept, affine_slope = f.AffineSlope, affine_r_squared = f.AffineR2 }) },
                () =>
                {
                    Console.WriteLine(plan.StepEpochs > 0
                        ? $"T = c·x^β per layer (x = η for lr, 1/B for batch_size), per-step temperatures over every step of the last {plan.StepEpochs} epoch(s); T = a + b/B beside it:"
                        : $"T = c·x^β per layer (x = η for lr, 1/B for batch_size), equilibrium window last:{last}; T = a + b/B beside it:");
                    Console.WriteLine($"  {"parameter",-11} {"layer",-10} {"points",6} {"beta",8} {"c",11} {"R²",6} {"a",11} {"b",11} {"R²",6}");
                    foreach (var f in fits) Console.WriteLine($"  {f.Parameter,-11} {f.Layer,-10} {f.Points,6} {f.Beta,8:F3} {f.C,11:G4} {f.R2,6:F3} {f.AffineIntercept,11:G4} {f.AffineSlope,11:G4} {f.AffineR2,6:F3}");
                    Console.WriteLine($"  tables: {Path.Combine(dir, Sweep.TableFile)}, {Path.Combine(dir, Sweep.FitsFile)}");
                });
            return ExitCodes.Ok;
        });
        return command;
    }

    static double[] ParseValues(string flag, string? text) =>
        Flags.List(text)?.Select(s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0
            ? v : throw new ThermoException($"{flag}: '{s}' is not a positive number")).Distinct().ToArray() ?? [];
}
