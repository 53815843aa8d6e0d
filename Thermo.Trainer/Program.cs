using System.CommandLine;
using Thermo.Trainer;
using Thermo.Trainer.Cli;

return Program.Run(args);

/// <summary>Entry point of the <c>thermo</c> executable: one verb per stage.</summary>
public static partial class Program
{
    /// <summary>Root of runs and data: $THERMO_ARTIFACTS, else ./artifacts.</summary>
    public static string ArtifactsDirectory() =>
        Environment.GetEnvironmentVariable("THERMO_ARTIFACTS") is { Length: > 0 } dir ? dir : Path.Combine(Directory.GetCurrentDirectory(), "artifacts");

    public static int Run(string[] args)
    {
        var root = new RootCommand("Thermo: the thermodynamics of a network's weights — train, snapshot, analyse, prune")
        {
            TrainCommand.Build(),
            DataCommand.Build(),
            AnalyzeCommand.Build(),
            PruneCommand.Build(),
            ReproduceCommand.Build(),
            ReportCommand.Build(),
        };
        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                // One line, the exit code of every other bad input; --help shows the usage.
                var verb = args.Length > 0 && !args[0].StartsWith('-') ? args[0] + " " : "";
                Console.Error.WriteLine($"thermo: error: {parsed.Errors[0].Message} (see thermo {verb}--help)");
                return ExitCodes.BadInput;
            }
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Unwrap(e) is ThermoException or Thermo.Analysis.ArtifactException)
        {
            Console.Error.WriteLine($"thermo: error: {Unwrap(e).Message}");
            return ExitCodes.BadInput;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"thermo: internal error: {e}");
            return ExitCodes.InternalError;
        }
    }

    static Exception Unwrap(Exception e) => e is AggregateException { InnerException: { } inner } ? Unwrap(inner) : e;
}
