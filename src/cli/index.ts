import { Command, CommanderError } from 'commander';
import { isPetrelError, errorMessage } from '../shared/index.js';
import { VERSION } from '../version.js';
import { register as registerConfig } from './commands/config.js';
import { register as registerServe } from './commands/serve.js';
import { register as registerDkim } from './commands/dkim.js';
import { register as registerEvents } from './commands/events.js';
import { register as registerPrivacy } from './commands/privacy.js';
import { register as registerQueue } from './commands/queue.js';
import { register as registerSuppression } from './commands/suppression.js';
import { register as registerUser } from './commands/user.js';
import { register as registerBackup } from './commands/backup.js';
import { register as registerBounce } from './commands/bounce.js';
import { register as registerShaping } from './commands/shaping.js';
import { register as registerEgress } from './commands/egress.js';
import { register as registerKey } from './commands/key.js';
import { register as registerDoctor } from './commands/doctor.js';
import { CliError } from './context.js';

function buildProgram(): Command {
  const program = new Command('petrel')
    .description('Petrel: a self-hosted SMTP sending engine')
    .version(VERSION)
    .option('-c, --config <path>', 'config file (default: $PETREL_CONFIG, else embedded defaults)')
    .option('--json', 'machine-readable output, one JSON object per line')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerServe(program);
  registerConfig(program);
  registerUser(program);
  registerQueue(program);
  registerEvents(program);
  registerSuppression(program);
  registerPrivacy(program);
  registerDkim(program);
  registerBounce(program);
  registerShaping(program);
  registerEgress(program);
  registerKey(program);
  registerBackup(program);
  registerDoctor(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI; every failure becomes one line on stderr and an exit code (1 failure, 2 usage). */
export async function run(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof CliError) {
      process.stderr.write(`petrel: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(
      `petrel: ${isPetrelError(err) ? err.message : `unexpected error: ${errorMessage(err)}`}\n`,
    );
    process.exitCode = 1;
  }
}

await run(process.argv);
