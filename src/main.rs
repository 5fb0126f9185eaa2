use memcached_rs::config::{parse_args, Invocation};

fn main() {
    let config = match parse_args(std::env::args_os()) {
        Invocation::Run(config) => config,
        Invocation::Print(text) => {
            print!("{text}");
            return;
        }
        Invocation::Fail(message, status) => {
            eprintln!("{}", message.trim_end());
            std::process::exit(status);
        }
    };
    std::process::exit(memcached_rs::server::start(config));
}
