using Thermo.Trainer.Training;
using Thermo.Trainer;
using System.CommandLine;
using Thermo.Trainer.Models;
using Thermo.Trainer.Native;

namespace Thermo.Cli.Verbs;

/// <summary><c>thermo doctor</c>: the native self-check on its own, with what the machine's kernels are.</summary>
public static class DoctorVerb
{
    public static Command Build()
    {
        var models = new Option<string>("--models") { Description = $"Models to check, comma-separated, or all ({string.Join(", ", ModelFactory.Names)})", DefaultValueFactory = _ => "all" };
        var batchSize = new Option<int>("--batch-size") { Description = "Training batch size to check at, beside the evaluation batch (stlnet: one batch of 8)", DefaultValueFactory = _ => 128 };
        var kernels = new Option<string>("--kernels") { Description = $"Convolution kernels to check: onednn-aligned (the default), aten (the fallback), onednn (the layers unpadded, to see this machine's fault); default: {NativeSetup.KernelsVariable} or onednn-aligned", DefaultValueFactory = _ => "default" };
        var repeats = new Option<int>("--repeats") { Description = "Passes per case (each after poisoning freed memory)", DefaultValueFactory = _ => 2 };
        var command = new Command("doctor", "Check that this machine's native kernels compute the models' forward and backward passes correctly") { models, batchSize, kernels, repeats };
        command.SetAction(parse =>
        {
            if (parse.GetValue(kernels) is { } chosen and not "default") NativeSetup.Use(NativeSetup.Parse(chosen, "--kernels"));
            var names = parse.GetValue(models) is "all" or null ? ModelFactory.Names : parse.GetValue(models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var n in names.Where(n => !ModelFactory.Names.Contains(n)))
                throw new ThermoException($"--models: unknown model '{n}' (known: {string.Join(", ", ModelFactory.Names)})");
            if (parse.GetValue(repeats) < 1) throw new ThermoException($"--repeats: must be at least 1, got {parse.GetValue(repeats)}");
            if (parse.GetValue(batchSize) <= 0) throw new ThermoException($"--batch-size: must be positive, got {parse.GetValue(batchSize)}");
            var stack = NativeSetup.Describe();
            var cases = NumericsSelfCheck.ConvolutionCases()
                .Concat(names.SelectMany(n => SelfCheckCases.ForModel(n, parse.GetValue(batchSize))))
                .ToList();
            var report = NumericsSelfCheck.Run(cases, parse.GetValue(repeats));
            CliOutput.Result(new { native = stack, passed = report.Passed, cases = report.Cases, failures = report.Failures, worst_relative_error = report.Passed ? report.WorstRelativeError : (double?)null, seconds = report.Elapsed.TotalSeconds }, () =>
            {
                Console.WriteLine($"cpu:        {stack.CpuModel}");
                Console.WriteLine($"simd:       {stack.CpuFeatures}");
                Console.WriteLine($"libtorch:   {stack.LibTorchVersion}, ATen kernels {stack.AtenCapability}, {stack.OneDnnVersion}");
                Console.WriteLine($"convolutions: {stack.Convolutions}; threads {stack.Threads} (+{stack.InteropThreads} inter-op)");
                if (stack.Environment.Length > 0) Console.WriteLine($"environment: {string.Join(" ", stack.Environment)}");
                foreach (var c in report.Cases)
                {
                    var failed = report.Failures.Where(f => f.Case == c).ToList();
                    Console.WriteLine(failed.Count == 0 ? $"  ok    {c}" : $"  WRONG {c}: {string.Join("; ", failed.Select(f => f.Quantity))}");
                }
                Console.WriteLine(report.Passed
                    ? $"self-check passed: {report.Cases.Count} cases, worst relative error {report.WorstRelativeError:G2} (tolerance {NumericsSelfCheck.Tolerance:G1}), {report.Elapsed.TotalSeconds:F1} s"
                    : $"self-check FAILED: {report.Failures.Count} quantities wrong in {report.Failures.Select(f => f.Case).Distinct().Count()} of {report.Cases.Count} cases");
            });
            if (report.Passed) return ExitCodes.Ok;
            // One line on stderr; with --json the result above is the one document on stdout.
            Console.Error.WriteLine($"thermo: error: {new NativeNumericsException(report.Failures[0], report.Failures.Count, stack).Message}");
            return ExitCodes.WrongNumerics;
        });
        return command;
    }
}
