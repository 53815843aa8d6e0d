using Thermo.Trainer.Training;
using System.CommandLine;
using Thermo.Trainer;
using Thermo.Cli;
using Thermo.Cli.Verbs;

return Program.Run(args);

/// <summary>Entry point of the <c>thermo</c> executable: one verb per stage.</summary>
public static partial class Program
{
    /// <summary>Root of runs and data: $THERMO_ARTIFACTS, else ./artifacts.</summary>
    public static string ArtifactsDirectory() =>
        Environment.GetEnvironmentVariable("THERMO_ARTIFACTS") is { Length: > 0 } dir ? dir : Path.Combine(Directory.GetCurrentDirectory(), "artifacts");

    /// <summary>This process's arguments as given (a Slurm finishing job reruns them).</summary>
    public static IReadOnlyList<string> Arguments { get; private set; } = [];

    /// <summary>Verbs that read snapshots or checkpoints and write tables, and never make a tensor.</summary>
    static readonly HashSet<string> FileOnlyVerbs = ["analyze", "import"];

    public static int Run(string[] args)
    {
        Arguments = args;
        var root = new RootCommand("Thermo: the thermodynamics of a network's weights — train, snapshot, analyse, prune")
        {
            TrainVerb.Build(),
            DataVerb.Build(),
            AnalyzeVerb.Build(),
            ImportVerb.Build(),
            MaskVerb.Build(),
            PruneVerb.Build(),
            ReproduceVerb.Build(),
            ReportVerb.Build(),
            SweepVerb.Build(),
            CollectVerb.Build(),
            WatchVerb.Build(),
            DoctorVerb.Build(),
        };
        root.Options.Add(CliOutput.JsonOption);
        root.Options.Add(CliOutput.QuietOption);
        try
        {
            // Before any tensor exists: which native kernels every verb runs on (docs/NATIVE.md). The
            // verbs that only read files and write tables create no tensor and do not load libtorch,
            // which takes about half a second.
            if (args.Length == 0 || !FileOnlyVerbs.Contains(args[0])) Thermo.Trainer.Native.NativeSetup.Apply();
            args = TrainPresets.Expand(args);
            var parsed = root.Parse(args);
            CliOutput.Json = parsed.GetValue(CliOutput.JsonOption);
            CliOutput.Quiet = parsed.GetValue(CliOutput.QuietOption);
            // A run directory argument takes any token, so an unknown option would pass as a run
            // directory: refuse option-like arguments by name (negative numbers stay allowed).
            // An option's own value may start with '-' (--sbatch-option=--mem=4G): those tokens are the option's.
            var optionValues = parsed.CommandResult.Children.OfType<System.CommandLine.Parsing.OptionResult>().SelectMany(r => r.Tokens).ToHashSet();
            var unknown = parsed.Tokens.FirstOrDefault(t => t.Type == System.CommandLine.Parsing.TokenType.Argument && !optionValues.Contains(t)
                && t.Value.StartsWith('-') && t.Value.Length > 1 && !double.TryParse(t.Value, System.Globalization.CultureInfo.InvariantCulture, out _));
            if (unknown is not null)
            {
                var verb = args.Length > 0 && !args[0].StartsWith('-') ? args[0] + " " : "";
                var message = $"unknown option '{unknown.Value}'";
                Console.Error.WriteLine($"thermo: error: {message} (see thermo {verb}--help)");
                CliOutput.Error(message, ExitCodes.BadInput);
                return ExitCodes.BadInput;
            }
            if (parsed.Errors.Count > 0)
            {
                // One line, the exit code of every other bad input; --help shows the usage.
                var verb = args.Length > 0 && !args[0].StartsWith('-') ? args[0] + " " : "";
                // An unknown option first: a missing required one is often only its consequence.
                var first = parsed.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parsed.Errors[0];
                Console.Error.WriteLine($"thermo: error: {first.Message} (see thermo {verb}--help)");
                CliOutput.Error(first.Message, ExitCodes.BadInput);
                return ExitCodes.BadInput;
            }
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        // The library says what and where; here it is worded with flags (SettingFlags) and an exit code.
        catch (Exception e) when (Unwrap(e) is Thermo.Analysis.SettingException setting)
        {
            return Refuse(SettingFlags.Message(setting), ExitCodes.BadInput);
        }
        catch (Exception e) when (Unwrap(e) is Thermo.Trainer.Training.RunDirectoryException directory)
        {
            return Refuse(RunDirectoryFlags.Message(directory), ExitCodes.BadInput);
        }
        catch (Exception e) when (Unwrap(e) is Thermo.Analysis.Run.NoRunException noRun)
        {
            return Refuse(SettingFlags.Message(noRun), ExitCodes.BadInput);
        }
        catch (Exception e) when (Unwrap(e) is Thermo.Analysis.NotWrittenException notWritten)
        {
            return Refuse(SettingFlags.Message(notWritten), ExitCodes.BadInput);
        }
        catch (Exception e) when (Unwrap(e) is ThermoException or Thermo.Analysis.ArtifactException)
        {
            return Refuse(Unwrap(e).Message, ExitCodes.BadInput);
        }
        catch (Exception e) when (Unwrap(e) is IOException or UnauthorizedAccessException)
        {
            // A full disk, a read-only or unwritable directory: every write is atomic, so what was there
            // before is intact; one line says what the system refused.
            return Refuse(Unwrap(e).Message, ExitCodes.BadInput);
        }
        catch (Exception e) when (Unwrap(e) is Thermo.Trainer.Native.NativeNumericsException)
        {
            return Refuse(Unwrap(e).Message, ExitCodes.WrongNumerics);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"thermo: internal error: {e}");
            CliOutput.Error(e.Message, ExitCodes.InternalError);
            return ExitCodes.InternalError;
        }
    }

    /// <summary>An expected failure: one line on stderr (and in --json), and its exit code.</summary>
    static int Refuse(string message, int code)
    {
        Console.Error.WriteLine($"thermo: error: {message}");
        CliOutput.Error(message, code);
        return code;
    }

    static Exception Unwrap(Exception e) => e is AggregateException { InnerException: { } inner } ? Unwrap(inner) : e;
}
