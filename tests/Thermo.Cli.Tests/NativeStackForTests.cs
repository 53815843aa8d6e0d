using System.Runtime.CompilerServices;
using Thermo.Trainer.Native;

namespace Thermo.Cli.Tests;

/// <summary>Several tests train in this process (the runs the executable then reads): the native stack is set up as in <c>thermo</c>.</summary>
static class NativeStackForTests
{
    [ModuleInitializer]
    internal static void Apply() => NativeSetup.Apply();
}
