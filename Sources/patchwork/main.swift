import ArgumentParser
import Foundation
import PatchworkCLI

// Under mpirun every rank parses the same arguments, so a bad one fails on all of them alike:
// only rank 0 (or a process mpirun did not start) prints the message, so N copies do not interleave.
let reportsErrors = (ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? "0") == "0"
do {
    try PatchworkCommand.checkEnvironment()
    var command = try PatchworkCommand.parseAsRoot()
    try command.run()
} catch {
    if reportsErrors { PatchworkCommand.exit(withError: error) }
    exit(PatchworkCommand.exitCode(for: error).rawValue)
}
