using Thermo.Pipeline.Protocols;
using Thermo.Trainer;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Trainer.Training;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo sweep</c>: temperature against hyper-parameters (SPEC "Temperature vs hyper-parameters").
/// From a run's final (equilibrium) model, one ordinary run per grid value — each learning rate at the
/// run's batch size, each batch size at the run's learning rate — trained as a child <c>thermo train</c>
/// process (so several can run at once, and a killed sweep resumes), analysed over its last epochs,
/// and every layer's temperature fitted as T = c·x^β for x = η and x = 1/B.
/// </summary>
public static class SweepVerb
{
    public static Command Build()
    {
        var from = new Option<string>("--from") { Description = "The equilibrium run to continue from (its last snapshot)", Required = true };
        var lrs = new Option<string>("--lr") { Description = "Learning rates, comma-separated (batch size: the run's)" };
        var batches = new Option<string>("--batch-size") { Description = "Batch sizes, comma-separated (learning rate: the run's)" };
        var epochs = new Option<int>("--epochs") { Description = "Epochs trained at each grid point", DefaultValueFactory = _ => 10 };
        var jobs = new Option<int>("--jobs") { Description = "Grid points trained at once, as separate processes", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out") { Description = "Sweep directory (default: sweep/ inside the --from run)" };
        var command = new Command("sweep", "Temperature vs learning rate and 1/batch size: continue an equilibrium run at each grid value, analyse, fit T = c·x^β per layer")
        {
            from, lrs, batches, epochs, jobs, output,
        };
        var window = new WindowFlag(command, "Temperatures over this window of each point, last:N (default: the last half of --epochs)", null, "--equilibrium", legacyIsCount: true);
        command.SetAction(parse =>
        {
            var lrValues = ParseValues("--lr", parse.GetValue(lrs));
            var batchValues = ParseValues("--batch-size", parse.GetValue(batches));
            var plan = new Sweep.Plan(parse.GetValue(from)!, lrValues, batchValues, parse.GetValue(epochs), window.LastEpochs(parse) ?? 0, parse.GetValue(jobs), parse.GetValue(output));
            var (dir, last, fits) = Sweep.Run(plan, ThermoChild, new ConsoleProgress());
            CliOutput.Result(new { directory = dir, window = $"last:{last}", fits = fits.Select(f => new { parameter = f.Parameter, layer = f.Layer, points = f.Points, beta = f.Beta, c = f.C, r_squared = f.R2 }) },
                () =>
                {
                    Console.WriteLine($"T = c·x^β per layer (x = η for lr, 1/B for batch_size), equilibrium window last:{last}:");
                    Console.WriteLine($"  {"parameter",-11} {"layer",-10} {"points",6} {"beta",8} {"c",11} {"R²",6}");
                    foreach (var f in fits) Console.WriteLine($"  {f.Parameter,-11} {f.Layer,-10} {f.Points,6} {f.Beta,8:F3} {f.C,11:G4} {f.R2,6:F3}");
                    Console.WriteLine($"  tables: {Path.Combine(dir, Sweep.TableFile)}, {Path.Combine(dir, Sweep.FitsFile)}");
                });
            return ExitCodes.Ok;
        });
        return command;
    }

    static double[] ParseValues(string flag, string? text) =>
        Flags.List(text)?.Select(s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0
            ? v : throw new ThermoException($"{flag}: '{s}' is not a positive number")).Distinct().ToArray() ?? [];

    /// <summary>A child <c>thermo</c> process (this executable) with <paramref name="args"/>.</summary>
    static ProcessStartInfo ThermoChild(IReadOnlyList<string> args)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(psi.FileName) == "dotnet") psi.ArgumentList.Add(typeof(SweepVerb).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }
}
