//! grace-init: parse the command line, set up logging, run the command under supervision, exit with its code.
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::io::Write;

use grace_init::{cli, exit_code, logging, pause, run, startup, sys};

fn main() {
    // First of all: block signals, so a stop signal that arrives while the command line is parsed waits in the
    // queue instead of vanishing (PID 1 has no default actions), and note the parent for --pdeathsig.
    let early = startup::Early::capture();
    let code = match cli::parse(std::env::args_os()) {
        cli::Parsed::Info(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            0
        }
        cli::Parsed::Usage { message, format } => {
            logging::print_error(format, &message);
            exit_code::USAGE
        }
        cli::Parsed::Run(config) => {
            logging::init(config.log_filter.clone(), config.log_format);
            for warning in &config.warnings {
                log::warn!("{warning}");
            }
            if config.pause {
                pause::pause(&config, early)
            } else {
                run::run(*config, early)
            }
        }
    };
    logging::flush();
    sys::exit_now(code);
}
